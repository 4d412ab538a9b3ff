"""The LLM layer: every call to a language model goes through here, and through litellm.

`client` is the litellm client (time-outs and upstream failures become typed errors); `embedded`
runs the default GGUF model in-process with llama.cpp and registers it as a litellm provider;
`model_files` assembles that model from its PyPI parts and refuses a file whose sha256 differs;
`queue` bounds how many answers use the model at once and how many may wait. This layer imports
neither `service.answer` nor `service.api`.
"""
