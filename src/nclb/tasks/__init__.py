"""Tasks: data + prompt + scorer."""
