"""One self-contained HTML page per checkpoint (``inspect-kit report``), and the HTML every
Result shows in a notebook.

Modules (import them directly): :mod:`.html` (escaping, numbers with their uncertainty,
tables, provenance), :mod:`.figures` (matplotlib figures inline), :mod:`.svg` (small
interactive SVG charts with hover values and a static print fallback), :mod:`.views` (what
each Result type shows), :mod:`.card` (``Result._repr_html_``), :mod:`.plan` (which analyses
apply to a model, with which budgets), :mod:`.build` (run them, a failed one kept as an error),
:mod:`.page` (the page: style, script, sections) and :mod:`.read` (Results back from a page).
Nothing on a page points outside the file.
"""
