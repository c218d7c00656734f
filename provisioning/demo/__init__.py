"""What `make demo` shows (CPython only): the live table of verified summaries (`view`) and
the cost of streaming raw samples instead (`rawcost`); and the fleet simulator (`fleet`,
`fleet_run`): thousands of devices with their own keys and certificates against a real broker
and collectors, reporting what the city stored. Sits on top, beside the command line:
it uses the city side and the trust anchor, and nothing below imports it.
"""
