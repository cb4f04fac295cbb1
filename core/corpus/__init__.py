"""Pairs data: loading and batching user data, the bundled WordNet sets, the mini benchmark's mteb tasks."""
