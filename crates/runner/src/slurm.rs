//! Slurm job arrays: one array task per expanded run (`crossomics run --run-index`).

use std::path::Path;

/// Resources of each array task.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub job_name: String,
    pub time: String,
    pub cpus: usize,
    pub mem: String,
    pub gpus: usize,
    pub partition: Option<String>,
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A batch script whose array task `i` runs the experiment's run `i`; the table is built
/// afterwards with `crossomics table`.
pub fn script(
    exe: &Path,
    config: &Path,
    overrides: &[String],
    n_runs: usize,
    o: &SlurmOptions,
) -> String {
    let mut s = String::from("#!/usr/bin/env bash\n");
    s.push_str(&format!("#SBATCH --job-name={}\n", quote(&o.job_name)));
    s.push_str(&format!("#SBATCH --array=0-{}\n", n_runs.saturating_sub(1)));
    s.push_str(&format!("#SBATCH --time={}\n", o.time));
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", o.cpus));
    s.push_str(&format!("#SBATCH --mem={}\n", o.mem));
    if o.gpus > 0 {
        s.push_str(&format!("#SBATCH --gres=gpu:{}\n", o.gpus));
    }
    if let Some(p) = &o.partition {
        s.push_str(&format!("#SBATCH --partition={}\n", quote(p)));
    }
    s.push_str(&format!(
        "#SBATCH --output={}-%A_%a.log\n",
        quote(&o.job_name)
    ));
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!(
        "export OMP_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-{}}}\n",
        o.cpus
    ));
    let mut cmd = format!(
        "{} run {} --run-index \"$SLURM_ARRAY_TASK_ID\"",
        quote(&exe.display().to_string()),
        quote(&config.display().to_string())
    );
    for ov in overrides {
        cmd.push_str(&format!(" --set {}", quote(ov)));
    }
    s.push_str(&cmd);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_one_task_per_run_and_quotes_arguments() {
        let o = SlurmOptions {
            job_name: "abl".into(),
            time: "01:00:00".into(),
            cpus: 2,
            mem: "8G".into(),
            gpus: 1,
            partition: Some("gpu".into()),
        };
        let s = script(
            Path::new("/opt/crossomics"),
            Path::new("exp dir/e.toml"),
            &["model.latent_dim=8".into()],
            6,
            &o,
        );
        assert!(s.contains("#SBATCH --array=0-5\n"));
        assert!(s.contains("#SBATCH --gres=gpu:1\n"));
        assert!(s.contains("#SBATCH --partition=gpu\n"));
        assert!(s.ends_with(
            "/opt/crossomics run 'exp dir/e.toml' --run-index \"$SLURM_ARRAY_TASK_ID\" --set model.latent_dim=8\n"
        ));
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
