// HTTP2Engine: placeholder until its owner lands it.
