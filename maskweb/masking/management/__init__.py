"""`manage.py` commands: serve (the whole app on one machine), cleanup, models, create_bucket."""
