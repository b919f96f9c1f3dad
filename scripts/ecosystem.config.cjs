/**
 * PM2 ecosystem of candle-server.
 *
 *   pm2 start scripts/ecosystem.config.cjs        # start; "online" once the candle map is ready
 *   pm2 reload candle-server                      # graceful: final snapshot, then warm start from it
 *   pm2 logs candle-server                        # pino JSON lines
 *
 * Graceful reload: the service sends process.send('ready') once every symbol is ready and the
 * HTTP API listens (wait_ready), and on SIGINT closes within its --shutdown-timeout (20 s),
 * writing a final snapshot; kill_timeout sits above that bound so PM2 never cuts the snapshot
 * short. The rule file is config/spot.json unless CANDLE_SERVER_CONFIG names another one.
 */
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const SHUTDOWN_TIMEOUT_SECONDS = 20;

module.exports = {
  apps: [
    {
      name: 'candle-server',
      cwd: root,
      script: path.join(root, 'dist/cli/main.js'),
      args: [
        'start',
        '--config',
        process.env.CANDLE_SERVER_CONFIG || 'config/spot.json',
        '--shutdown-timeout',
        String(SHUTDOWN_TIMEOUT_SECONDS),
      ],
      interpreter: 'node',
      exec_mode: 'fork',
      instances: 1,
      // 'online' only after the candle map is ready; a warm-up from REST of many symbols takes minutes.
      wait_ready: true,
      listen_timeout: 10 * 60_000,
      // Above the service's own shutdown bound, so the final snapshot is always written.
      kill_timeout: (SHUTDOWN_TIMEOUT_SECONDS + 10) * 1000,
      autorestart: true,
      max_restarts: 20,
      min_uptime: 30_000,
      exp_backoff_restart_delay: 1000,
      // pino writes its own timestamps; PM2 keeps the lines as they are.
      out_file: path.join(root, 'logs/candle-server.out.log'),
      error_file: path.join(root, 'logs/candle-server.err.log'),
      merge_logs: true,
      env: { NODE_ENV: 'production' },
    },
  ],
};
