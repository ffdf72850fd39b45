// The configuration module's public surface: types, loading, units.

export type { Config, ConfigInput, ConfigKeyPath, ConfigKeySpec, LogFormat, LogLevel, UpstreamConfig } from "./schema.js";
export { LOG_FORMATS, LOG_LEVELS, configKeys, createConfigSchema, isRegistryHost, parseListen } from "./schema.js";
export type { ConfigReferenceEntry } from "./load.js";
export {
  ConfigError,
  configReference,
  defaultConfigFile,
  envKey,
  loadConfig,
  parseConfig,
  unknownEnvOverrides,
} from "./load.js";
export { formatDuration, formatSize, parseDuration, parseSize } from "./units.js";
