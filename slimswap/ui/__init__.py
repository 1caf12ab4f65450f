"""The web UI: a Gradio app over the same pipeline functions as the command line.

app.py       the page (Swap and Verify tabs), its Engine and `launch`
live_tab.py  the Live tab (the browser's webcam through slimswap.live.FrameSwapper)
common.py    what both share: the model choice and errors shown in the page
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no usage reports leave the machine
