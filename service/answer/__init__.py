"""The answering core: from a question to a checked, cited answer.

`question.Question` reads a question once (its parts, words and forms, the kind of answer it asks
for); `retrieval` finds chunks (dense and BM25, fused); `context` picks the sentences the model is
shown; `prompts` and `guard` build the request and screen obvious injections; `pipeline.Answerer`
drives it all and streams. The answer checks come after the model: `citations` keeps only the
sentences a passage supports, `answer_kinds` holds a question asking for a colour, a count, a year
or a price to that form, and `second_look` asks the model again with only the supporting
sentences. `words` is the lemma matching they share, `types` the values they pass around, and
`loading` wires the real components together. This layer may import `service.llm` and `index`,
never `service.api`.
"""
