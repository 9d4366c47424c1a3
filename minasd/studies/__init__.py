"""Studies built on the method: the paper's protocol (:mod:`.experiment`), the committed results
over seeds (:mod:`.results`), controlled one-change experiments (:mod:`.controlled`), and the
analyses and summary views that read their tables (:mod:`.analysis`, :mod:`.summary_view`).

The method's modules (``minasd.data`` ... ``minasd.detector``) never import this package.
"""
