"""Pipeline definition and its typed configuration."""
