"""LLM providers behind one small interface. Providers know nothing of Temporal."""
