//! The machinery behind `settings!`: what one declaration says about a setting, and the
//! macro that turns the declarations into [`Config`](super::Config), the flags
//! ([`Cli`](super::Cli)), the file's keys and the table the docs are rendered from.

use std::path::PathBuf;

use clap::builder::ValueParser;
use clap::{Arg, ArgMatches, Command};

use super::kinds::{BadValue, Kind, Raw};
use super::ConfigError;

/// A setting's default.
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    /// Written as a user would write it (`"1GiB"`, `"7d"`, `"off"`), and parsed like one.
    Text(&'static str),
    /// Worked out at start (`shown` is what `--help` and the docs say).
    Computed {
        shown: &'static str,
        value: fn() -> String,
    },
}

impl From<&'static str> for DefaultValue {
    fn from(text: &'static str) -> DefaultValue {
        DefaultValue::Text(text)
    }
}

/// A default worked out at start: `shown` is what `--help` and the docs say about it.
pub const fn computed(shown: &'static str, value: fn() -> String) -> DefaultValue {
    DefaultValue::Computed { shown, value }
}

/// How the example file (`shardlog.example.toml`) writes a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    /// `key = <default>`.
    Default,
    /// `key = <this>`: the example sets it to something else.
    Set(&'static str),
    /// `# key = <this>`: commented out, a value to try (the default is left in force).
    Hint(&'static str),
}

/// Everything one declaration says about a setting.
#[derive(Debug)]
pub struct Setting {
    /// The field of [`Config`](super::Config).
    pub field: &'static str,
    /// The flag without its dashes, which is also the TOML key: `segment-size`.
    pub flag: String,
    /// `SHARDLOG_SEGMENT_SIZE`.
    pub env: String,
    pub value_name: &'static str,
    /// One line without a final period, as `--help` and the docs show it (without the
    /// default).
    pub help: String,
    pub default: DefaultValue,
    pub example: Example,
    /// The accepted values (`64KiB..=1TiB`), when they are bounded.
    pub range: Option<String>,
    /// The example file writes it as a bare integer.
    pub number: bool,
    negative: bool,
    value_parser: fn() -> ValueParser,
}

impl Setting {
    /// Called by `settings!` for each declaration.
    pub fn new<K: Kind>(
        field: &'static str,
        flag: Option<&'static str>,
        value_name: &'static str,
        doc: &[&str],
        default: DefaultValue,
        example: Option<Example>,
    ) -> Setting {
        let flag = flag.map_or_else(|| field.replace('_', "-"), str::to_string);
        let env = format!("SHARDLOG_{}", flag.to_uppercase().replace('-', "_"));
        let help = doc
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .trim_end_matches('.')
            .to_string();
        Setting {
            field,
            flag,
            env,
            value_name,
            help,
            default,
            example: example.unwrap_or(Example::Default),
            range: K::range(),
            number: K::NUMBER,
            negative: K::NEGATIVE,
            value_parser: K::Raw::value_parser,
        }
    }

    /// The default as `--help` and the docs show it.
    pub fn shown_default(&self) -> &'static str {
        match self.default {
            DefaultValue::Text(t) => t,
            DefaultValue::Computed { shown, .. } => shown,
        }
    }

    /// The help line with its default and range, as `--help` shows it.
    fn help_line(&self) -> String {
        let mut line = format!("{} [default: {}]", self.help, self.shown_default());
        if let Some(r) = &self.range {
            line += &format!(" [range: {r}]");
        }
        line
    }

    fn arg(&'static self) -> Arg {
        Arg::new(self.flag.as_str())
            .long(self.flag.as_str())
            .env(self.env.as_str())
            .value_name(self.value_name)
            .help(self.help_line())
            .value_parser((self.value_parser)())
            .allow_hyphen_values(self.negative)
    }

    pub fn invalid(&'static self, reason: BadValue) -> ConfigError {
        ConfigError::Invalid {
            flag: self.flag.as_str(),
            reason,
        }
    }

    /// A refused value, named by where it came from: its environment variable when it was
    /// read from there, its flag otherwise (the command line, the file, the default).
    pub fn refused(&'static self, reason: BadValue, from_env: bool) -> ConfigError {
        if from_env {
            ConfigError::InvalidEnv {
                var: self.env.as_str(),
                reason,
            }
        } else {
            self.invalid(reason)
        }
    }

    /// Whether clap took this setting's value from its environment variable.
    pub fn from_env(&'static self, m: &ArgMatches) -> bool {
        m.value_source(self.flag.as_str()) == Some(clap::parser::ValueSource::EnvVariable)
    }

    /// The given text, or else the default, parsed as a `K` and converted to the field's type.
    pub fn resolve<K: Kind, T: TryFrom<K::Out>>(
        &'static self,
        given: Option<K::Raw>,
        from_env: bool,
    ) -> Result<T, ConfigError> {
        let raw = given.unwrap_or_else(|| {
            K::Raw::from(match self.default {
                DefaultValue::Text(t) => t.to_string(),
                DefaultValue::Computed { value, .. } => value(),
            })
        });
        let out = K::parse(&raw).map_err(|m| self.refused(m, from_env))?;
        T::try_from(out).map_err(|_| self.refused(BadValue::DoesNotFit, from_env))
    }

    /// The flag's value from clap (command line or environment).
    pub fn given<R: Raw>(&'static self, m: &ArgMatches) -> Option<R> {
        m.get_one::<R>(self.flag.as_str()).cloned()
    }
}

/// The setting behind a field of [`Config`](super::Config).
pub fn setting(field: &str) -> &'static Setting {
    super::settings()
        .iter()
        .find(|s| s.field == field)
        .unwrap_or_else(|| panic!("no setting declared for Config::{field}"))
}

/// `--config`, the one flag that is not a setting.
pub const CONFIG_HELP: &str =
    "TOML file with any of the settings below (keys named like the flags)";

/// The command line: `--config` and one flag per setting, each also read from its
/// environment variable.
pub fn command() -> Command {
    let config = Arg::new("config")
        .long("config")
        .env("SHARDLOG_CONFIG")
        .value_name("PATH")
        .help(CONFIG_HELP)
        .value_parser(clap::value_parser!(PathBuf));
    Command::new("shardlog")
        .version(env!("CARGO_PKG_VERSION"))
        .about("A thread-per-core log-streaming broker")
        .arg(config)
        .args(super::settings().iter().map(Setting::arg))
}

/// Declares every setting, once. Each entry is
///
/// ```text
/// /// Help, as `--help`, the docs and the example file show it (also the field's doc).
/// field: FieldType as Kind, "VALUE-NAME", default "text"
///     [, flag "other-name"]      the flag and TOML key, when not the field's name in kebab-case
///     [, check |v| ...]          a further check of the value: Err(message) refuses it
///     [, example Set("..")]      how shardlog.example.toml writes it (Set or Hint)
/// ;
/// ```
///
/// and gives the field of [`Config`](super::Config), the flag of [`Cli`](super::Cli) with its
/// environment variable `SHARDLOG_<FLAG>`, the key of the TOML file, and the row of
/// `settings()` that `--help`, validation and the docs come from.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty as $kind:ty, $value_name:literal, default $default:expr
            $(, flag $flag:tt)?
            $(, check $check:expr)?
            $(, example $example:expr)?
        ;
    )+) => {
        /// The validated broker configuration, one field per setting. [`Config::default`]
        /// gives every setting's default.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        /// Flags, each merged with its environment variable by clap, not yet validated.
        #[derive(Debug, Default)]
        pub struct Cli {
            pub config: Option<PathBuf>,
            $( pub $field: Option<<$kind as Kind>::Raw>, )+
            /// The fields whose value clap read from their environment variable (a refusal
            /// names the variable rather than the flag).
            pub from_env: Vec<&'static str>,
        }

        /// The TOML file: the same keys as the flags. Numbers may be given as integers or as
        /// strings with units.
        #[derive(Debug, Default, Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
        struct FileConfig {
            $( $(#[serde(rename = $flag)])? $field: Option<<$kind as Kind>::File>, )+
        }

        /// Every setting, in the order declared (that of `--help` and the docs).
        pub fn settings() -> &'static [Setting] {
            static ALL: std::sync::LazyLock<Vec<Setting>> = std::sync::LazyLock::new(|| {
                vec![$(
                    Setting::new::<$kind>(
                        stringify!($field),
                        None $(.or(Some($flag)))?,
                        $value_name,
                        &[$($doc),+],
                        DefaultValue::from($default),
                        None $(.or(Some($example)))?,
                    ),
                )+]
            });
            &ALL
        }

        impl clap::FromArgMatches for Cli {
            fn from_arg_matches(m: &clap::ArgMatches) -> Result<Cli, clap::Error> {
                Ok(Cli {
                    config: m.get_one::<PathBuf>("config").cloned(),
                    $( $field: setting(stringify!($field)).given(m), )+
                    from_env: settings()
                        .iter()
                        .filter(|s| s.from_env(m))
                        .map(|s| s.field)
                        .collect(),
                })
            }
            fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
                *self = Cli::from_arg_matches(m)?;
                Ok(())
            }
        }

        impl Config {
            /// Each setting from its flag (or environment variable), else the file, else its
            /// default; parsed and checked.
            fn merge(cli: Cli, file: FileConfig) -> Result<Config, ConfigError> {
                Ok(Config {$(
                    $field: {
                        let s = setting(stringify!($field));
                        let from_env = cli.from_env.contains(&s.field);
                        let given = cli.$field.or(file.$field.map(Into::into));
                        let v: $ty = s.resolve::<$kind, $ty>(given, from_env)?;
                        $(
                            let check: fn(&$ty) -> Result<(), BadValue> = $check;
                            check(&v).map_err(|m| s.refused(m, from_env))?;
                        )?
                        v
                    },
                )+})
            }
        }
    };
}
pub(crate) use settings;
