"""Answer questions over the index: retrieve -> select context -> prompt -> LLM -> check citations."""
