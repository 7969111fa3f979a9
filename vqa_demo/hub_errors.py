"""One sentence for a Hugging Face Hub id that could not be loaded: gated, offline, or not found.

transformers and datasets wrap the hub's errors (``GatedRepoError``, ``RepositoryNotFoundError``,
``LocalEntryNotFoundError``, ``OfflineModeIsEnabled``) in ``OSError``s of their own, so the whole
chain of causes is read, by type first and by the wrappers' wording second.
"""

from __future__ import annotations

from huggingface_hub import constants
from huggingface_hub import errors as hub

_GATED_WORDS = ("gated repo", "is a gated repository", "access to model", "restricted")
_OFFLINE_WORDS = (
    "offline",
    "couldn't connect",
    "outgoing traffic has been disabled",
    "not cached",
    "couldn't reach",
)
_MISSING_WORDS = (
    "is not a valid model identifier",
    "doesn't exist on the hub",
    "repo id must be in the form",
    "not found",
    "404",
)


def causes(error: BaseException) -> list[BaseException]:
    """``error`` and everything it was raised from, outermost first (cycles cut)."""
    chain: list[BaseException] = []
    while error is not None and all(error is not seen for seen in chain):
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def hub_kind(error: BaseException) -> str | None:
    """``"gated"``, ``"offline"``, ``"missing"`` or None (not a hub lookup failure)."""
    chain = causes(error)
    if any(isinstance(e, hub.GatedRepoError) for e in chain):
        return "gated"
    missing = hub.RepositoryNotFoundError | hub.RevisionNotFoundError | hub.HFValidationError
    if any(isinstance(e, missing) for e in chain):
        return "missing"
    if any(isinstance(e, hub.LocalEntryNotFoundError | hub.OfflineModeIsEnabled) for e in chain):
        return "offline"
    text = " ".join(str(e).lower() for e in chain)
    for kind, words in (("gated", _GATED_WORDS), ("offline", _OFFLINE_WORDS), ("missing", _MISSING_WORDS)):
        if any(word in text for word in words):
            return kind
    return None


def hub_problem(error: BaseException, name: str, flag: str, what: str = "model") -> str:
    """One sentence saying why hub id ``name`` (given with ``flag``) failed and what to change."""
    kind = hub_kind(error)
    if kind == "gated":
        return (
            f"{flag} {name}: this {what} is gated on the Hugging Face Hub; accept its terms on its page, "
            f"then run `hf auth login` or set HF_TOKEN, or pass a local copy with {flag}"
        )
    if kind == "offline":
        mode = "HF_HUB_OFFLINE=1 is set" if constants.HF_HUB_OFFLINE else "the hub cannot be reached"
        return (
            f"{flag} {name}: this {what} is not in your local Hugging Face cache and {mode}; download it "
            f"once online (unset HF_HUB_OFFLINE), or pass a local folder with {flag}"
        )
    if kind == "missing":
        return (
            f"{flag} {name}: no such {what} on the Hugging Face Hub and no such local folder; check the id "
            "for a typo (owner/name) or the path"
        )
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"{flag} {name}: the {what} could not be loaded ({type(error).__name__}: {first_line[:200]})"
