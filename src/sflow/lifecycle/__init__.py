"""The one run lifecycle both doors share: settings, record and listeners, teardown, summary, signals."""
