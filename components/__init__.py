"""segflow components: plain-Python building blocks (never import prefect here)."""
