"""Tasks: data + model + loss + metrics wired together, one module per task."""
