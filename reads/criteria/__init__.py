"""Response-assessment criteria used by blinded reads (pure Python, no Django).

Currently: RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009) in :mod:`reads.criteria.recist11`.
"""
