//! The command-line syntax of schedules: `name[:key=value,...]`, parsed and printed.

use std::fmt;

use super::*;

/// The names [`parse_schedule`] accepts.
pub const SCHEDULE_NAMES: [&str; 9] = [
    "constant",
    "step",
    "multistep",
    "exponential",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "onecycle",
    "plateau",
];

/// Parses the command-line syntax `name[:key=value,key=value,...]` (see [`SCHEDULE_NAMES`];
/// list values such as milestones are separated by `;`), filling PyTorch's defaults for the
/// keys left out, then validates the result. Errors name the offending key or value.
///
/// ```
/// use kiln::optim::schedule::{parse_schedule, Schedule};
/// # fn main() -> kiln::Result<()> {
/// let s = parse_schedule("step:step_size=30,gamma=0.1")?;
/// assert_eq!(s, Schedule::Step { step_size: 30, gamma: 0.1 });
/// assert_eq!(parse_schedule(&s.to_string())?, s);
/// # Ok(()) }
/// ```
pub fn parse_schedule(text: &str) -> Result<Schedule> {
    let text = text.trim();
    let (name, args) = match text.split_once(':') {
        Some((name, args)) => (name.trim(), args),
        None => (text, ""),
    };
    if !SCHEDULE_NAMES.contains(&name) {
        return Err(config(format!(
            "schedule: unknown name `{name}` (expected one of {})",
            SCHEDULE_NAMES.join(", ")
        )));
    }
    let mut a = Args::parse(name, args)?;
    let schedule = match name {
        "constant" => Schedule::Constant,
        "step" => Schedule::Step {
            step_size: a.required("step_size")?,
            gamma: a.or("gamma", 0.1)?,
        },
        "multistep" => Schedule::MultiStep {
            milestones: a.milestones()?,
            gamma: a.or("gamma", 0.1)?,
        },
        "exponential" => Schedule::Exponential {
            gamma: a.required("gamma")?,
        },
        "cosine" => Schedule::Cosine {
            t_max: a.required("t_max")?,
            eta_min: a.or("eta_min", 0.0)?,
        },
        "cosine_restarts" => Schedule::CosineWarmRestarts {
            t_0: a.required("t_0")?,
            t_mult: a.or("t_mult", 1)?,
            eta_min: a.or("eta_min", 0.0)?,
        },
        "cyclic" => Schedule::Cyclic {
            base_lr: a.required("base_lr")?,
            max_lr: a.required("max_lr")?,
            step_size_up: a.or("step_size_up", 2000)?,
            step_size_down: a.optional("step_size_down")?,
            mode: a.choice(
                "mode",
                &[
                    ("triangular", CyclicMode::Triangular),
                    ("triangular2", CyclicMode::Triangular2),
                    ("exp_range", CyclicMode::ExpRange),
                ],
            )?,
            gamma: a.or("gamma", 1.0)?,
        },
        "onecycle" => Schedule::OneCycle {
            max_lr: a.required("max_lr")?,
            total_steps: a.required("total_steps")?,
            pct_start: a.or("pct_start", 0.3)?,
            anneal: a.choice(
                "anneal",
                &[("cos", Anneal::Cos), ("linear", Anneal::Linear)],
            )?,
            div_factor: a.or("div_factor", 25.0)?,
            final_div_factor: a.or("final_div_factor", 1e4)?,
            three_phase: a.or("three_phase", false)?,
        },
        _ => Schedule::ReduceOnPlateau {
            mode: a.choice(
                "mode",
                &[("min", PlateauMode::Min), ("max", PlateauMode::Max)],
            )?,
            factor: a.or("factor", 0.1)?,
            patience: a.or("patience", 10)?,
            threshold: a.or("threshold", 1e-4)?,
            threshold_mode: a.choice(
                "threshold_mode",
                &[("rel", ThresholdMode::Rel), ("abs", ThresholdMode::Abs)],
            )?,
            cooldown: a.or("cooldown", 0)?,
            min_lr: a.or("min_lr", 0.0)?,
            eps: a.or("eps", 1e-8)?,
        },
    };
    a.finish()?;
    schedule.validate()?;
    Ok(schedule)
}

/// The `key=value` pairs of one schedule, remembering which keys the schedule asked for so
/// that a key it does not know is reported with the list of those it does.
struct Args<'a> {
    name: &'a str,
    pairs: Vec<(&'a str, &'a str)>,
    known: Vec<&'static str>,
}

impl<'a> Args<'a> {
    fn parse(name: &'a str, args: &'a str) -> Result<Self> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let mut seen = HashSet::new();
        for item in args.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(config(format!(
                    "{name}: `{item}` is not of the form key=value"
                )));
            };
            let key = key.trim();
            if !seen.insert(key) {
                return Err(config(format!("{name}: key `{key}` is given twice")));
            }
            pairs.push((key, value.trim()));
        }
        Ok(Args {
            name,
            pairs,
            known: Vec::new(),
        })
    }

    fn raw(&mut self, key: &'static str) -> Option<&'a str> {
        self.known.push(key);
        self.pairs.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }

    fn value<T: FromText>(&self, key: &str, text: &str) -> Result<T> {
        T::from_text(text).ok_or_else(|| {
            config(format!(
                "{}: {key}={text} is not {}",
                self.name,
                T::DESCRIPTION
            ))
        })
    }

    fn optional<T: FromText>(&mut self, key: &'static str) -> Result<Option<T>> {
        match self.raw(key) {
            Some(text) => self.value(key, text).map(Some),
            None => Ok(None),
        }
    }

    fn or<T: FromText>(&mut self, key: &'static str, default: T) -> Result<T> {
        Ok(self.optional(key)?.unwrap_or(default))
    }

    fn required<T: FromText>(&mut self, key: &'static str) -> Result<T> {
        match self.optional(key)? {
            Some(v) => Ok(v),
            None => Err(config(format!(
                "{}: missing required key `{key}`",
                self.name
            ))),
        }
    }

    /// One of the named `options`; the type's default (PyTorch's) when the key is absent.
    fn choice<T: Copy + Default>(&mut self, key: &'static str, options: &[(&str, T)]) -> Result<T> {
        let Some(text) = self.raw(key) else {
            return Ok(T::default());
        };
        match options.iter().find(|(n, _)| *n == text) {
            Some(&(_, v)) => Ok(v),
            None => {
                let names: Vec<&str> = options.iter().map(|&(n, _)| n).collect();
                Err(config(format!(
                    "{}: {key}={text} is not one of {}",
                    self.name,
                    names.join(", ")
                )))
            }
        }
    }

    fn milestones(&mut self) -> Result<Vec<usize>> {
        let Some(text) = self.raw("milestones") else {
            return Err(config(format!(
                "{}: missing required key `milestones`",
                self.name
            )));
        };
        text.split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|m| {
                m.parse().map_err(|_| {
                    config(format!(
                        "{}: milestones={text}: `{m}` is not a non-negative integer",
                        self.name
                    ))
                })
            })
            .collect()
    }

    fn finish(self) -> Result<()> {
        match self.pairs.iter().find(|(k, _)| !self.known.contains(k)) {
            Some((key, _)) if self.known.is_empty() => Err(config(format!(
                "{}: unknown key `{key}` ({} takes no arguments)",
                self.name, self.name
            ))),
            Some((key, _)) => Err(config(format!(
                "{}: unknown key `{key}` (expected one of {})",
                self.name,
                self.known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

/// A value type of the schedule syntax.
trait FromText: Sized {
    const DESCRIPTION: &'static str;
    fn from_text(text: &str) -> Option<Self>;
}

impl FromText for usize {
    const DESCRIPTION: &'static str = "a non-negative integer";
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl FromText for f32 {
    const DESCRIPTION: &'static str = "a finite number";
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok().filter(|v: &f32| v.is_finite())
    }
}

impl FromText for bool {
    const DESCRIPTION: &'static str = "true or false";
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// Writes the schedule in [`parse_schedule`]'s syntax with every key spelled out, so that
/// parsing the text gives back an equal schedule.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Step { step_size, gamma } => {
                write!(f, ":step_size={step_size},gamma={gamma}")
            }
            Schedule::MultiStep { milestones, gamma } => {
                let list: Vec<String> = milestones.iter().map(usize::to_string).collect();
                write!(f, ":milestones={},gamma={gamma}", list.join(";"))
            }
            Schedule::Exponential { gamma } => write!(f, ":gamma={gamma}"),
            Schedule::Cosine { t_max, eta_min } => write!(f, ":t_max={t_max},eta_min={eta_min}"),
            Schedule::CosineWarmRestarts {
                t_0,
                t_mult,
                eta_min,
            } => write!(f, ":t_0={t_0},t_mult={t_mult},eta_min={eta_min}"),
            Schedule::Cyclic {
                base_lr,
                max_lr,
                step_size_up,
                step_size_down,
                mode,
                gamma,
            } => {
                write!(
                    f,
                    ":base_lr={base_lr},max_lr={max_lr},step_size_up={step_size_up}"
                )?;
                if let Some(down) = step_size_down {
                    write!(f, ",step_size_down={down}")?;
                }
                let mode = match mode {
                    CyclicMode::Triangular => "triangular",
                    CyclicMode::Triangular2 => "triangular2",
                    CyclicMode::ExpRange => "exp_range",
                };
                write!(f, ",mode={mode},gamma={gamma}")
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                anneal,
                div_factor,
                final_div_factor,
                three_phase,
            } => {
                let anneal = match anneal {
                    Anneal::Cos => "cos",
                    Anneal::Linear => "linear",
                };
                write!(
                    f,
                    ":max_lr={max_lr},total_steps={total_steps},pct_start={pct_start},\
                     anneal={anneal},div_factor={div_factor},\
                     final_div_factor={final_div_factor},three_phase={three_phase}"
                )
            }
            Schedule::ReduceOnPlateau {
                mode,
                factor,
                patience,
                threshold,
                threshold_mode,
                cooldown,
                min_lr,
                eps,
            } => {
                let mode = match mode {
                    PlateauMode::Min => "min",
                    PlateauMode::Max => "max",
                };
                let threshold_mode = match threshold_mode {
                    ThresholdMode::Rel => "rel",
                    ThresholdMode::Abs => "abs",
                };
                write!(
                    f,
                    ":mode={mode},factor={factor},patience={patience},threshold={threshold},\
                     threshold_mode={threshold_mode},cooldown={cooldown},min_lr={min_lr},eps={eps}"
                )
            }
        }
    }
}
