"""Payment-provider gateways (R1-R3): the plug-in boundary of the ledger.

* :mod:`.base` -- the ``PaymentGateway`` protocol and the dataclasses that
  cross it (``CheckoutRequest``, ``Checkout``, ``Notification``).
* :mod:`.registry` -- ``gateway_for``, ``ProviderEndpoints``, credential
  fields and masking.
* ``stripe_gateway`` / ``payu_gateway`` / ``paypal_gateway`` -- one class per
  provider; ``*_events`` map provider events to notifications.
"""
