"""Wire formats shared by the clients and the emulator: server-sent events and AWS event-stream framing."""
