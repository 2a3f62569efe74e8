"""Tenancy and access: tenants, staff users with roles, JWT logins, API keys with scopes."""
