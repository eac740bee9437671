"""Render a script in scene-cut-aligned chunks on Ray (``python -m vsflavr render``), then splice them.

``plan``, ``manifest`` and ``scenefile`` (Av1an's scenes.json, lists of cuts) are pure (no VapourSynth,
no Ray); ``source`` evaluates the script and finds the source's cuts; ``chunk`` renders one chunk
through vspipe and an encoder; ``cluster`` is the only module that imports Ray; ``splice`` joins the
chunks, with the film's other tracks from ``tracks``; ``verify`` checks OUT's frames against the
chunks' hashes; ``command`` is the command line.
"""
