"""Alembic migrations. Shipped as a package so an installed `lull migrate` finds them."""
