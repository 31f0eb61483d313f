"""AWS access behind small adapters, built in one place (:mod:`difusion.adapters.factory`)."""
