"""The city's language, shared by every role that speaks to residents (CPython only).

`catalogue` loads a language catalogue (catalogue/en.json, de.json, or a city's own file):
the words, numbers and times of the page, `manifest show` and the demo. `manifest_words` is
the one renderer of a signed privacy manifest into sentences, with a catalogue's `manifest.*`
phrases and the manifest's own numbers: nothing else words a privacy promise.
"""
