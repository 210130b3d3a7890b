"""Tests of the Stripe simulator (generator, index, HTTP server, world, command)."""
