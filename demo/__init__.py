try:  # Celery is an optional extra (reconcile[celery]); loading the app binds reconcile's tasks to it
    from .celery import app as celery_app
except ImportError:  # pragma: no cover - without celery
    celery_app = None

__all__ = ["celery_app"]
