"""The platform's channels to the operators: SMPP binds (aiosmpplib) or Kannel over HTTP.

Both report to the same two places: the ``Sender`` (a submit accepted, refused, receipted)
and the service's ``receive`` (an incoming message), so the rest of the platform does not
know which mode it runs in.
"""
