// Placeholder until protoc-c output lands (scripts/regen-protos.sh).
