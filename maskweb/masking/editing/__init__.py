"""The session domain: what a masking session is and what can be done with it.

It owns the rules: who may change a session (access), its photo's encode (encodes), the current
object's prompt log and its undo (current, history), drawing its mask and telling every socket
(masks), the applied objects and their combinations (objects, combine), the session's life
(lifecycle, retention), what a client may spend (limits), and the full-resolution downloads
(downloads, sidecars). The edges call it (maskweb.masking.api over HTTP, maskweb.masking.live
over the socket, maskweb.masking.worker in Celery); it calls down into the encode job
(maskweb.masking.jobs), decoding and its caches (maskweb.masking.decoding) and the process
plumbing (maskweb.masking.plumbing), never up. Every mutation is one transaction that bumps
the session's revision, then tells every socket of the session after the commit.

The names below are the domain's interface for the edges; the modules import each other
directly.
"""

from maskweb.masking.editing.access import (
    EDIT,
    VIEW,
    Access,
    Forbidden,
    NotFound,
    reload,
    resolve,
    revision,
)
from maskweb.masking.editing.current import (
    PromptLog,
    add_prompt,
    clear,
    guess_next,
    parse_upright,
    redo,
    select_candidate,
    stored_prompt,
    undo,
)
from maskweb.masking.editing.encodes import (
    check_model,
    default_model,
    encode_status,
    model_list,
    preload_embedding,
    queue_encode,
    request_encode,
    requeue_if_lost,
)
from maskweb.masking.editing.lifecycle import (
    create_session,
    delete_session,
    remove_sidecar,
    store_sidecar,
    switch_model,
)
from maskweb.masking.editing.masks import (
    Rendered,
    add_prompt_and_render,
    draw_waiting,
    encode_and_draw,
    preview,
    publish,
    render_current,
    render_prompts,
)
from maskweb.masking.editing.objects import (
    apply,
    combine_objects,
    delete_object,
    get_object,
    object_work_mask,
    reopen,
    update_object,
    visible_objects,
)
from maskweb.masking.editing.state import object_dict, objects_list, session_state

__all__ = [
    "Access", "EDIT", "Forbidden", "NotFound", "PromptLog", "Rendered", "VIEW", "add_prompt",
    "add_prompt_and_render", "apply", "check_model", "clear", "combine_objects",
    "create_session", "default_model", "delete_object", "delete_session", "draw_waiting",
    "encode_and_draw", "encode_status", "get_object", "guess_next", "model_list",
    "object_dict", "object_work_mask", "objects_list", "parse_upright", "preload_embedding",
    "preview", "publish", "queue_encode", "redo", "reload", "remove_sidecar", "render_current",
    "render_prompts", "reopen", "request_encode", "requeue_if_lost", "resolve", "revision",
    "select_candidate", "session_state", "store_sidecar", "stored_prompt", "switch_model",
    "undo", "update_object", "visible_objects",
]
