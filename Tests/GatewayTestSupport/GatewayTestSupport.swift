// GatewayTestSupport
