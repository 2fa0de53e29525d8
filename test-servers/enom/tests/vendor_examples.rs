//! The test server's answers against the examples Enom publishes
//! (api.enom.com/docs, "Example Output") and the answers recorded from
//! Enom's test system in `bensie/enom` (MIT), as quoted in
//! docs/research/enom-api.md: every element of the example is in ours, in
//! the same order, with numbers where it has numbers. Ours may have more.
//! Published examples that are not well-formed XML (ModifyNS, SetRegLock,
//! TP_CreateOrder, Purchase; §2.1) are compared in their repaired form.

use provisio_enom_test_server::{Enom, Options};

fn assert_same_shape(command: &str, source: &str, example: &str, ours: &str) {
    let out = provisio_test_server_kit::xml_differences(example, ours).unwrap();
    assert!(out.is_empty(), "{command} differs from {source}:\n{}\nours: {ours}", out.join("\n"));
}

struct Client {
    http: reqwest::Client,
    url: String,
    uid: String,
    pw: String,
}

impl Client {
    async fn call(&self, command: &str, params: &[(&str, &str)]) -> String {
        let mut query = vec![("command", command), ("uid", &self.uid), ("pw", &self.pw), ("responsetype", "xml")];
        query.extend_from_slice(params);
        let response = self.http.get(&self.url).query(&query).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

async fn start() -> (Enom, provisio_test_server_kit::Running, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let enom = Enom::new(Options { transfer_after: std::time::Duration::from_millis(200), ..Options::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = provisio_test_server_kit::serve(listener, enom.router(), None);
    let (uid, pw) = enom.options().accounts[0].clone();
    let client = Client { http: reqwest::Client::new(), url: format!("{}/interface.asp", running.url()), uid, pw };
    (enom, running, client)
}

const DOCS: &str = "https://api.enom.com/docs";
const RECORDED: &str = "bensie/enom test/test_helper.rb (MIT)";

#[tokio::test]
async fn every_command_answers_like_enoms_published_examples() {
    let (enom, _running, c) = start().await;

    let check = c.call("Check", &[("sld", "superduperdomainname"), ("tld", "com")]).await;
    assert_same_shape(
        "Check",
        &format!("{DOCS} (Check)"),
        "<interface-response><DomainName>superduperdomainname.com</DomainName><RRPCode>211</RRPCode><RRPText>Domain not available</RRPText><Command>CHECK</Command><APIType>API.NET</APIType><Language>eng</Language><ErrCount>0</ErrCount><ResponseCount>0</ResponseCount><MinPeriod>1</MinPeriod><MaxPeriod>10</MaxPeriod><Server>sjl1vwresell_t</Server><Site>eNom</Site><IsLockable>True</IsLockable><IsRealTimeTLD>True</IsRealTimeTLD><TimeDifference>+8.00</TimeDifference><ExecTime>1.734</ExecTime><Done>true</Done><TrackingKey>32f969e1-1475-4e5f-a42a-502c3f2d6599</TrackingKey><RequestDateTime>3/22/2017 3:58:23 PM</RequestDateTime></interface-response>",
        &check,
    );
    assert!(check.contains("<RRPCode>210</RRPCode>"), "{check}");

    let purchase = c
        .call(
            "Purchase",
            &[
                ("sld", "resellerdocs"),
                ("tld", "com"),
                ("ns1", "ns1.example.net"),
                ("ns2", "ns2.example.net"),
                ("numyears", "1"),
                ("RegistrantFirstName", "Ann"),
                ("RegistrantLastName", "Lee"),
                ("RegistrantEmailAddress", "ann@example.com"),
            ],
        )
        .await;
    assert_same_shape(
        "Purchase",
        RECORDED,
        "<interface-response><OrderID>157609741</OrderID><TotalCharged>15</TotalCharged><RegistrantPartyID>{CF869235-0083-4BB0-99DF-DCEAC6F2294E}</RegistrantPartyID><RRPCode>200</RRPCode><RRPText>Command completed successfully - 157609741</RRPText><Command>PURCHASE</Command><Language>eng</Language><ErrCount>0</ErrCount><Done>true</Done></interface-response>",
        &purchase,
    );
    assert_same_shape(
        "Purchase",
        &format!("{DOCS}/purchase"),
        "<interface-response><OrderID>157609741</OrderID><DomainInfo><RegistryCreateDate>2018-05-17 01:26:10.000</RegistryCreateDate><RegistryExpDate>2019-05-17 01:26:10.000</RegistryExpDate></DomainInfo><TotalCharged>15</TotalCharged><OrderStatus>Success</OrderStatus><OrderDescription>Order has completed</OrderDescription><Command>PURCHASE</Command></interface-response>",
        &purchase,
    );

    let info = c.call("GetDomainInfo", &[("sld", "resellerdocs"), ("tld", "com")]).await;
    assert_same_shape(
        "GetDomainInfo",
        &format!("{DOCS}/getdomaininfo"),
        "<interface-response><GetDomainInfo><domainname sld=\"01817\" tld=\"com\" domainnameid=\"152809550\">01817.com</domainname><multy-langSLD /><status><expiration>4/1/2017 7:34:00 PM</expiration><deletebydate>4/1/2017 7:34:00 PM</deletebydate><deletetype /><restorable>True</restorable><renewbeforeexpiration /><registrar>eNom, Inc.</registrar><registrationstatus>Registered</registrationstatus><purchase-status>Paid</purchase-status><belongs-to party-id=\"{39AE68C0-D019-4690-9999-FD632BC1AFAA}\">enomtest_reseller</belongs-to><escrowhold /><escrowliftdate /><auctionhold>False</auctionhold><auctionliftdate /></status><ParkingEnabled>False</ParkingEnabled><services><entry name=\"dnsserver\"><enomDNS value=\"YES\" isDotName=\"NO\" /><service changable=\"1\">1006</service><configuration changable=\"0\" type=\"dns\"><dns>dns1.name-services.com</dns></configuration></entry></services></GetDomainInfo><Command>GETDOMAININFO</Command></interface-response>",
        &info,
    );

    let contacts = c
        .call(
            "Contacts",
            &[
                ("sld", "resellerdocs"),
                ("tld", "com"),
                ("ContactType", "ADMIN"),
                ("AdminFirstName", "Ann"),
                ("AdminLastName", "Lee"),
                ("AdminAddress1", "1 High St"),
                ("AdminCity", "London"),
                ("AdminCountry", "GB"),
                ("AdminEmailAddress", "ann@example.com"),
                ("AdminPhone", "+44.2071234567"),
            ],
        )
        .await;
    assert_same_shape(
        "Contacts",
        &format!("{DOCS}/contacts"),
        "<interface-response><Command>CONTACTS</Command><ConsentStatus>PENDING</ConsentStatus><Language>eng</Language><ErrCount>0</ErrCount><Done>true</Done></interface-response>",
        &contacts,
    );
    let got = c.call("GetContacts", &[("sld", "resellerdocs"), ("tld", "com")]).await;
    assert_same_shape(
        "GetContacts",
        &format!("{DOCS}/getcontacts"),
        "<interface-response><GetContacts><domainname sld=\"resellerdocs\" tld=\"com\" domainnameid=\"1\">resellerdocs.com</domainname><Registrant><RegistrantPartyID>{x}</RegistrantPartyID><RegistrantOrganizationName/><RegistrantFirstName>Ann</RegistrantFirstName><RegistrantLastName>Lee</RegistrantLastName><RegistrantAddress1/><RegistrantCity/><RegistrantCountry/><RegistrantPostalCode/><RegistrantEmailAddress>ann@example.com</RegistrantEmailAddress><RegistrantPhone/></Registrant><AuxBilling/><Tech/><Admin/><Billing/></GetContacts><Command>GETCONTACTS</Command></interface-response>",
        &got,
    );

    let modified = c
        .call(
            "ModifyNS",
            &[("sld", "resellerdocs"), ("tld", "com"), ("ns1", "ns3.example.net"), ("ns2", "ns4.example.net")],
        )
        .await;
    assert_same_shape(
        "ModifyNS",
        &format!("{DOCS}/modifyns (repaired)"),
        "<interface-response><RRPCode>200</RRPCode><RRPText>Command completed successfully</RRPText><Command>MODIFYNS</Command><ErrCount>0</ErrCount><Server>ResellerTest</Server><Site>enom</Site><Done>true</Done></interface-response>",
        &modified,
    );
    let dns = c.call("GetDNS", &[("sld", "resellerdocs"), ("tld", "com")]).await;
    assert_same_shape(
        "GetDNS",
        &format!("{DOCS}/GetDNS"),
        "<interface-response><dns>dns1.name-services.com</dns><dns>dns2.name-services.com</dns><UseDNS>default</UseDNS><HostsNumLimit>15</HostsNumLimit><DNSRegistrySynced>True</DNSRegistrySynced><RRPCodeGDNS>200</RRPCodeGDNS><RRPText>Command completed successfully</RRPText><Command>GETDNS</Command></interface-response>",
        &dns,
    );
    assert!(dns.contains("<dns>ns3.example.net</dns>"), "{dns}");

    let lock = c.call("GetRegLock", &[("sld", "resellerdocs"), ("tld", "com")]).await;
    assert_same_shape(
        "GetRegLock",
        &format!("{DOCS}/getreglock"),
        "<interface-response><reg-lock>1</reg-lock><registrar>eNom</registrar><RRPCode>200</RRPCode><RRPText>Command completed successfully</RRPText><Command>GETREGLOCK</Command></interface-response>",
        &lock,
    );
    let set_lock = c.call("SetRegLock", &[("sld", "resellerdocs"), ("tld", "com"), ("UnlockRegistrar", "1")]).await;
    assert_same_shape(
        "SetRegLock",
        &format!("{DOCS}/SetRegLock (repaired)"),
        "<interface-response><reg-lock>REGISTRAR-LOCK</reg-lock><RRPCodeSR>200</RRPCodeSR><RRPText>Command completed successfully</RRPText><Command>SETREGLOCK</Command></interface-response>",
        &set_lock,
    );

    let before = enom.domain("resellerdocs.com").unwrap().1;
    let extended = c.call("Extend", &[("sld", "resellerdocs"), ("tld", "com"), ("NumYears", "1")]).await;
    assert_same_shape(
        "Extend",
        &format!("{DOCS}/extend"),
        "<interface-response><Extension>successful</Extension><DomainName>resellerdocs.com</DomainName><OrderID>157781677</OrderID><RRPCode>200</RRPCode><RRPText>Command completed successfully</RRPText><DomainInfo><RegistryExpDate>2015-03-31 09:17:29.000</RegistryExpDate></DomainInfo><Command>EXTEND</Command><Done>true</Done><RequestDateTime>12/12/2011 3:32:35 AM</RequestDateTime></interface-response>",
        &extended,
    );
    // A second renewal within 24 hours is refused unless asked for: a retry renews once.
    let again = c.call("Extend", &[("sld", "resellerdocs"), ("tld", "com"), ("NumYears", "1")]).await;
    assert!(again.contains("<ErrCount>1</ErrCount>"), "{again}");
    assert_eq!(enom.domain("resellerdocs.com").unwrap().1, before.checked_add_months(chrono::Months::new(12)).unwrap());

    let synch = c
        .call(
            "SynchAuthInfo",
            &[("sld", "resellerdocs"), ("tld", "com"), ("EmailEPP", "True"), ("RunSynchAutoInfo", "True")],
        )
        .await;
    assert_same_shape(
        "SynchAuthInfo",
        RECORDED,
        "<interface-response><InfoSynched>True</InfoSynched><EPPEmailMessage>Email has been sent.</EPPEmailMessage><Command>SYNCHAUTHINFO</Command></interface-response>",
        &synch,
    );
    assert_eq!(enom.emailed(), ["resellerdocs.com"]);

    let renew = c.call("SetRenew", &[("sld", "resellerdocs"), ("tld", "com"), ("RenewFlag", "1")]).await;
    assert_same_shape(
        "SetRenew",
        &format!("{DOCS}/SetRenew"),
        "<interface-response><RenewName>True</RenewName><Success>True</Success><Command>SETRENEW</Command></interface-response>",
        &renew,
    );
    let get_renew = c.call("GetRenew", &[("sld", "resellerdocs"), ("tld", "com")]).await;
    assert_same_shape(
        "GetRenew",
        &format!("{DOCS}/getrenew"),
        "<interface-response><auto-renew>1</auto-renew><AutoPakRenew>0</AutoPakRenew><PakExist>1</PakExist><IDProtectRenew>0</IDProtectRenew><IDProtectExists>1</IDProtectExists><MobilizerRenew>0</MobilizerRenew><Command>GETRENEW</Command></interface-response>",
        &get_renew,
    );

    enom.add_domain("otherreseller", "resellerdocs2.net", "Move-Me-1");
    let order = c
        .call(
            "TP_CreateOrder",
            &[
                ("OrderType", "Autoverification"),
                ("DomainCount", "1"),
                ("SLD1", "resellerdocs2"),
                ("TLD1", "net"),
                ("AuthInfo1", "Move-Me-1"),
            ],
        )
        .await;
    assert_same_shape(
        "TP_CreateOrder",
        &format!("{DOCS}/TP_CreateOrder (repaired)"),
        "<interface-response><transferorder><transferorderid>445413</transferorderid><orderdate>7/29/2002 5:19:29 PM</orderdate><ordertypeid>1</ordertypeid><ordertypedesc>Auto Verification</ordertypedesc><statusid>4</statusid><statusdesc>Processing</statusdesc><authamount>17.90</authamount><version>1</version><transferorderdetail><transferorderdetailid>301770</transferorderdetailid><sld>resellerdocs2</sld><tld>net</tld><statusid>9</statusid><statusdesc>Awaiting auto verification of transfer request</statusdesc><price>8.95</price><usecontacts>0</usecontacts></transferorderdetail><transferorderdetailcount>1</transferorderdetailcount></transferorder><success>True</success><Command>TP_CREATEORDER</Command></interface-response>",
        &order,
    );
    let by_domain = c.call("TP_GetOrdersByDomain", &[("sld", "resellerdocs2"), ("tld", "net")]).await;
    assert_same_shape(
        "TP_GetOrdersByDomain",
        &format!("{DOCS}/tp-get-orders-by-domain"),
        "<interface-response><TransferOrder><transferorderid>445413</transferorderid><loginid>resellid</loginid><orderdate>7/29/2002 5:19:29 PM</orderdate><orderstatus>Processing</orderstatus><statusid>4</statusid></TransferOrder><ordercount>1</ordercount><Command>TP_GETORDERSBYDOMAIN</Command></interface-response>",
        &by_domain,
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let id = order.split("<transferorderid>").nth(1).unwrap().split('<').next().unwrap().to_owned();
    let done = c.call("TP_GetOrder", &[("TransferOrderID", &id)]).await;
    assert!(done.contains("<statusdesc>Transferred and paid successfully</statusdesc>"), "{done}");
    assert_eq!(enom.domain("resellerdocs2.net").unwrap().0, "resellid");
}

#[tokio::test]
async fn failures_carry_enoms_published_errors() {
    let (_enom, _running, c) = start().await;
    // Published on support.enom.com (Troubleshooting the Enom API).
    let wrong = Client { pw: "wrong".into(), ..c };
    let refused = wrong.call("GetDomainInfo", &[("sld", "x"), ("tld", "com")]).await;
    assert_same_shape(
        "bad login",
        "https://support.enom.com/support/solutions/articles/201000065294",
        "<interface-response><Command>GETDOMAININFO</Command><Language>eng</Language><ErrCount>1</ErrCount><errors><Err1>Bad User name or Password</Err1></errors><ResponseCount>1</ResponseCount><responses><response><ResponseNumber>304155</ResponseNumber><ResponseString>Validation error; invalid ; loginid</ResponseString></response></responses><Done>true</Done></interface-response>",
        &refused,
    );
    let c = Client { pw: _enom.options().accounts[0].1.clone(), ..wrong };
    let missing = c.call("GetDomainInfo", &[("sld", "nowhere"), ("tld", "com")]).await;
    assert_same_shape(
        "not found",
        "Namecheap dynamic DNS bodies (same envelope)",
        "<interface-response><Command>GETDOMAININFO</Command><Language>eng</Language><ErrCount>1</ErrCount><errors><Err1>Domain name not found</Err1></errors><ResponseCount>1</ResponseCount><responses><response><ResponseNumber>316153</ResponseNumber><ResponseString>Validation error; not found; domain name(s)</ResponseString></response></responses><Done>true</Done></interface-response>",
        &missing,
    );
}

#[test]
fn the_binary_runs_on_its_own_and_prints_where_and_how() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("enom-test-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_provisio-enom-test-server"))
        .args(["--listen", "127.0.0.1:0", "--account", "resellid:Token-123", "--ca-out"])
        .arg(dir.join("ca.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap()).lines().take(4).map(Result::unwrap).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lines[0].starts_with("ENOM_URL=https://127.0.0.1:") && lines[0].ends_with("/interface.asp"), "{lines:?}");
    assert_eq!(&lines[1..3], ["ENOM_UID=resellid", "ENOM_PW=Token-123"]);
    assert!(std::fs::read_to_string(dir.join("ca.pem")).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    std::fs::remove_dir_all(dir).unwrap();
}
