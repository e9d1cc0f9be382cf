"""Query functions by table group. Each takes a session and never commits: the caller owns
the transaction. Upserts and existence checks are pushed into SQL so every write is
idempotent."""
