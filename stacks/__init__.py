"""CDK stacks: each composes constructs from constructs/ and wires grants; no resource logic here."""
