"""Typed configuration tree."""
