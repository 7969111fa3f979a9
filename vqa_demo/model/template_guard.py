"""A checkpoint's chat template rendered under a time budget.

A chat template is a Jinja program shipped with the checkpoint (``chat_template.jinja``). Jinja's
sandbox bounds ``range`` but not nested loops, so a small template can run for hours. Loading a base
renders its template once, with the one-image user turn every prompt row uses, under
:data:`TEMPLATE_SECONDS`; the rendering that lays out prompt rows goes through the same bound. The
budget is enforced by a trace function on the rendering thread (Jinja compiles templates to Python,
so every loop step is a traced line): nothing runs in another thread or process, and an overrun is
stopped where it is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from vqa_demo.model.base_checks import UnsafeBaseError

TEMPLATE_SECONDS = 2.0  # a real template renders in milliseconds, even traced
CHECK_EVERY = 256  # trace events between clock reads
PROBE_MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which option?"}]}]


class _Overrun(BaseException):
    """Raised inside the template's frames; a BaseException, so no ``except Exception`` there stops it."""


def render_within(
    render: Callable[[], str], seconds: float = TEMPLATE_SECONDS, what: str = "chat template"
) -> str:
    """``render()`` stopped after ``seconds``; raises :class:`UnsafeBaseError` when it overruns or fails."""
    deadline = time.monotonic() + seconds
    events = 0

    def trace(frame, event, arg):
        nonlocal events
        events += 1
        if events % CHECK_EVERY == 0 and time.monotonic() > deadline:
            raise _Overrun
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        return render()
    except _Overrun:
        raise UnsafeBaseError(
            f"the {what} did not finish rendering within {seconds:g} s (nested loops?), so the checkpoint is "
            "refused: replace its chat_template.jinja with the model's original template"
        ) from None
    except Exception as error:
        raise UnsafeBaseError(
            f"the {what} could not be rendered ({type(error).__name__}: {str(error)[:200]}); replace its "
            "chat_template.jinja with the model's original template"
        ) from None
    finally:
        sys.settrace(previous)


def check_chat_template(processor, source: str, seconds: float = TEMPLATE_SECONDS) -> None:
    """Render ``processor``'s chat template (if it has one) once, with one image and a question, within ``seconds``."""
    if not getattr(processor, "chat_template", None):
        return
    render_within(
        lambda: processor.apply_chat_template(PROBE_MESSAGES, add_generation_prompt=True, tokenize=False),
        seconds,
        what=f"chat template of {source}",
    )
