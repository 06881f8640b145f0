#!/bin/sh
# `npm test`: every test file once with the MQTT state in memory, then the integration tests whose
# behaviour rests on the MQTT state again with it in Redis (docs/development.md, "Tests").
set -e
node --import tsx --test --test-concurrency=1 $(find test -name '*.test.ts' | sort)
BRIDGE_TEST_PERSISTENCE=redis node --import tsx --test --test-concurrency=1 $(sed -e 's/#.*//' test/on-redis.txt)
