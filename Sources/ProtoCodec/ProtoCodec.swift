// ProtoCodec: placeholder until its owner lands it.
