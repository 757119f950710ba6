"""The four stages; each is one function over (Runtime, SourcePlan) returning a result dict."""

STAGES = ("extract", "stage", "load", "transform")
