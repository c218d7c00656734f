"""What `make demo` shows (CPython only): the live table of verified summaries (`view`) and
the cost of streaming raw samples instead (`rawcost`). Sits on top, beside the command line:
it uses the city side and the trust anchor, and nothing below imports it.
"""
