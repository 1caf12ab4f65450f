"""The web UI: a Gradio app over the same pipeline functions as the command line."""
