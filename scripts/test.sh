#!/bin/sh
# `npm test`: every test file once with the MQTT state in memory, then the integration tests whose
# behaviour rests on the MQTT state again with it in Redis (docs/development.md, "Tests").
# A file that takes more than 5 minutes (the longest takes about 15 s) fails as timed out instead
# of holding CI for ever.
set -e
node --import tsx --test --test-concurrency=1 --test-timeout=300000 $(find test -name '*.test.ts' | sort)
BRIDGE_TEST_PERSISTENCE=redis node --import tsx --test --test-concurrency=1 --test-timeout=300000 $(sed -e 's/#.*//' test/on-redis.txt)
