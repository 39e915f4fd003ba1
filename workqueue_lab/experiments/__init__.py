"""Experiments a learner runs with a click or one call: the prefetch panel (03), the failure panel (05) and the
prefetch sweeps (03).  They sit above the engine and the lessons (they start runs and use the lessons'
callbacks) and draw with ``views``, which only draw."""
