"""Local HTTP servers implementing the provider APIs the gateways use."""
