"""Render a script in scene-cut-aligned chunks on Ray (``python -m vsflavr render``), then splice them.

``plan`` and ``manifest`` are pure (no VapourSynth, no Ray); ``source`` evaluates the script and
finds the source's cuts; ``chunk`` renders one chunk through vspipe and an encoder; ``cluster``
is the only module that imports Ray; ``splice`` joins the chunks; ``command`` is the command line.
"""
