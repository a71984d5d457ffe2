"""Prefect flows that wire gatewise's steps together (retrain). Import retrain lazily: it loads Prefect."""
