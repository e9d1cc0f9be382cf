"""Postgres access: tables, engine, query functions and migrations. Queries never commit."""
