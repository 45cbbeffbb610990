"""A tiny Django project for drf-stripe-subscription 1.2.2, the peer of the side-by-side benchmark.

It runs in its own virtualenv (``.peer-venv``, created by the bench), never in reconcile's: the
peer needs stripe-python < 15. Nothing here imports reconcile.
"""
