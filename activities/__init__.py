"""All of Lull's IO, as activity classes whose clients are injected by the hosting process."""
