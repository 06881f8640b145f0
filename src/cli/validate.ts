import amqplib from 'amqplib';
import { checkBrokerTopology } from '../amqp/broker-check.js';
import { connectOptions } from '../amqp/connect-options.js';
import { refusalMessage } from '../amqp/refusals.js';
import { redactUrl } from '../amqp/url.js';
import { downlinkSubscriptions } from '../bridge-wiring.js';
import { validateConfigFile, type ConfigLocator } from '../config/load.js';
import type { BridgeConfig } from '../config/schema.js';
import { ConfigError, formatProblem, UsageError } from '../errors.js';
import { compileDownlinkRules } from '../mapping/downlink.js';
import { UplinkResolver } from '../mapping/uplink.js';
import { parseArgs } from './args.js';
import { writeLine, type CommandIo } from './io.js';

export const VALIDATE_USAGE = 'mqtt-amqp-bridge validate FILE [--strict] [--amqp URL]';

/** How long `validate --amqp` waits for RabbitMQ to accept the connection. */
export const VALIDATE_CONNECT_TIMEOUT_MS = 10_000;

/**
 * `validate FILE`: prints `ok` (exit 0) or every problem as FILE:LINE:COL: message (exit 1);
 * the linter's warnings print as FILE:LINE:COL: warning: message and leave the exit code 0,
 * unless `--strict` makes them errors (exit 1). With `--amqp URL` it also asks that RabbitMQ,
 * changing nothing on it, whether it would refuse an exchange or queue the configuration needs
 * (each refusal is a problem at the entry that asks for it).
 */
export async function validateCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const { positional, options } = parseArgs(argv, [
    { name: 'strict', takesValue: false },
    { name: 'amqp', takesValue: true },
  ]);
  if (positional.length !== 1) throw new UsageError(`usage: ${VALIDATE_USAGE}`);
  let validated;
  try {
    validated = validateConfigFile(positional[0]!, { env: io.env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    writeLine(io.stdout, error.message);
    return 1;
  }
  const { config, locate, warnings } = validated;
  for (const warning of warnings) writeLine(io.stdout, formatProblem({ ...warning, message: `warning: ${warning.message}` }));
  const url = options.get('amqp');
  if (typeof url === 'string' && config.amqp.protocol !== '0-9-1') {
    // What an AMQP 1.0 broker refuses shows only when a link is attached: `run` reports it (/readyz).
    throw new UsageError(`--amqp asks an AMQP 0-9-1 RabbitMQ what it would refuse; this configuration speaks AMQP ${config.amqp.protocol}`);
  }
  if (typeof url === 'string' && (await brokerRefuses(config, url, locate, io)) > 0) return 1;
  if (warnings.length > 0 && options.has('strict')) return 1;
  writeLine(io.stdout, warnings.length > 0 ? `ok, with ${warnings.length} warning${warnings.length === 1 ? '' : 's'}` : 'ok');
  return 0;
}

/** Prints, as FILE:LINE:COL: message, what the RabbitMQ at `url` would refuse; returns how many (1 when it cannot be reached). */
async function brokerRefuses(config: BridgeConfig, url: string, locate: ConfigLocator, io: CommandIo): Promise<number> {
  let model;
  try {
    model = await amqplib.connect(url, {
      ...connectOptions({ ...config.amqp, url, connectionName: `${config.amqp.connectionName} (validate)` }),
      timeout: VALIDATE_CONNECT_TIMEOUT_MS,
    });
  } catch (error) {
    writeLine(io.stdout, `${redactUrl(url)}: cannot connect to RabbitMQ: ${(error as Error).message}`);
    return 1;
  }
  model.on('error', () => {});
  try {
    const refusals = await checkBrokerTopology(model, {
      exchanges: config.amqp.exchanges,
      uplinkExchanges: new UplinkResolver(config.uplink).exchangesOfRules(),
      downlink: downlinkSubscriptions(config.downlink, compileDownlinkRules(config.downlink)),
    });
    for (const refusal of refusals) writeLine(io.stdout, `${locate(refusal.entry)}: ${refusalMessage(refusal, null)}`);
    return refusals.length;
  } finally {
    await model.close().catch(() => {});
  }
}
