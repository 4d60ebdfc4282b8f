"""Test doubles and tiny-model builders for testing code that uses omniretrieve offline."""
