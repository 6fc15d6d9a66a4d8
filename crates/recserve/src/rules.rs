//! `recserve rules`: checks alert rule files (every error at its `file:line:col`) and prints the
//! bundled rules.

use crate::cli::RulesCommand;

pub fn run(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Default => {
            print!("{}", recserve_alerting::default_rules());
            Ok(())
        }
        RulesCommand::Check { files } => {
            let mut errors = 0;
            for file in &files {
                match recserve_alerting::check_file(file) {
                    Ok(parsed) => {
                        let groups = parsed.groups.len();
                        let rules: usize = parsed.groups.iter().map(|g| g.rules.len()).sum();
                        println!("{}: ok ({groups} groups, {rules} rules)", file.display());
                    }
                    Err(diagnostics) => {
                        for d in &diagnostics {
                            eprintln!("{d}");
                        }
                        errors += diagnostics.len();
                    }
                }
            }
            if errors > 0 {
                anyhow::bail!("{errors} error(s) in the rule files");
            }
            Ok(())
        }
    }
}
