print("trigger-gateway")
