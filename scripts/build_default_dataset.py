"""Build the embedded default instruction data set of adaptive-lora.

Writes ``src/adaptive_lora/data/assets/default.json``: a JSON list of records in the
Stanford Alpaca format (``instruction``, ``input``, ``output``; all strings, ``input``
may be empty).

Two kinds of records are combined:

* hand-written records, kept below as plain text blocks (``HANDWRITTEN_*``), one record per
  ``%% <task type>`` header, with the sections ``-- input`` (optional) and ``-- output``;
* generated records for template-friendly tasks (arithmetic word problems, unit conversions,
  sorting, counting, reversing), produced by seeded generators whose answers are computed here.

The output is deterministic: running the script twice gives byte-identical files.

Usage::

    python scripts/build_default_dataset.py            # write the data set
    python scripts/build_default_dataset.py --stats    # also print counts per task type
    python scripts/build_default_dataset.py --check    # fail if the file on disk is stale
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

SEED = 20240611
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "src" / "adaptive_lora" / "data" / "assets" / "default.json"

HANDWRITTEN_TASKS = (
    "open_qa",
    "how_to",
    "definition",
    "comparison",
    "list_brainstorm",
    "creative",
    "rewriting",
    "summarization",
    "classification",
    "extraction",
    "editing",
    "reasoning",
    "code",
)
GENERATED_TASKS = (
    "arithmetic_word_problem",
    "unit_conversion",
    "sorting",
    "counting",
    "reversing",
)

# ---------------------------------------------------------------------------------------------
# Hand-written records
# ---------------------------------------------------------------------------------------------

HANDWRITTEN_QA = r'''
%% open_qa
Why is the sky blue?
-- output
Sunlight contains every colour of visible light. When it passes through the atmosphere, the tiny nitrogen and oxygen molecules in the air scatter short wavelengths much more strongly than long ones; this is called Rayleigh scattering. Blue light is therefore bounced around the sky in all directions, so wherever you look away from the Sun you see scattered blue light. Violet is scattered even more, but sunlight contains less of it and our eyes are less sensitive to it, so the sky looks blue rather than violet.

%% open_qa
What causes the seasons on Earth?
-- output
The seasons are caused by the tilt of Earth's axis, about 23.4 degrees relative to its orbit. As Earth travels around the Sun, first one hemisphere and then the other is tilted towards the Sun. The hemisphere tilted towards it gets more direct sunlight and longer days, so it has summer; the one tilted away gets lower-angle light and shorter days, so it has winter. The changing distance to the Sun plays only a minor role: Earth is actually closest to the Sun in early January, during the northern winter.

%% open_qa
How do vaccines protect people from disease?
-- output
A vaccine shows the immune system a harmless version or piece of a germ, such as an inactivated or weakened virus, a purified protein, or genetic instructions (mRNA) for making one protein. The immune system responds by producing antibodies and memory cells that recognise that target. If the person is later exposed to the real germ, the immune system recognises it quickly and fights it off before it can cause serious illness. When enough people are vaccinated, the germ also has fewer chances to spread, which helps protect people who cannot be vaccinated.

%% open_qa
Why do we have leap years?
-- output
A calendar year has 365 days, but Earth takes about 365.2422 days to go around the Sun relative to the seasons. Without a correction, the calendar would drift by roughly a day every four years. Adding 29 February every fourth year fixes most of the gap. Because that slightly overcorrects, the Gregorian calendar skips the leap day in century years unless they are divisible by 400. That is why 2000 was a leap year but 1900 was not.

%% open_qa
Why does ice float on water?
-- output
Ice floats because it is less dense than liquid water. When water freezes, hydrogen bonds lock the molecules into an open, hexagonal crystal structure that takes up more space than the same molecules in liquid form. Ice is about 9% less dense than liquid water, so it floats with most of its volume below the surface. This is unusual, since most substances are denser as solids. It matters for life: lakes freeze from the top down, and the ice layer insulates the water beneath it.

%% open_qa
How does a rainbow form?
-- output
A rainbow forms when sunlight shines into raindrops. As light enters a drop it bends (refracts), reflects off the back of the drop, and bends again on the way out. Each colour bends by a slightly different amount, so white light is spread into its colours. Red light comes back at an angle of about 42 degrees from the point directly opposite the Sun and violet at about 40 degrees, so you see a circular arc with red on the outside. That is why a rainbow appears only when the Sun is behind you and rain is in front of you.

%% open_qa
What causes ocean tides?
-- output
Tides are caused mainly by the Moon's gravity. The Moon pulls more strongly on the side of Earth facing it than on Earth's centre, and more strongly on the centre than on the far side. This difference stretches the oceans into two bulges, one facing the Moon and one on the opposite side. As Earth rotates through these bulges, most coasts get two high tides and two low tides about every 24 hours and 50 minutes. The Sun adds a smaller effect: when Sun and Moon line up, tides are larger (spring tides); when they are at right angles, tides are smaller (neap tides).

%% open_qa
Why does cutting onions make people cry?
-- output
Cutting an onion breaks open its cells, so enzymes that were kept apart mix with sulfur-containing compounds. The reaction produces a volatile gas, syn-propanethial S-oxide, which drifts up to your eyes and irritates the nerves on their surface. Your eyes respond by producing tears to wash the irritant away. Chilling the onion first, using a sharp knife that crushes fewer cells, and cutting near a fan or an open window all reduce the effect.

%% open_qa
How many chambers does the human heart have, and what do they do?
-- output
The human heart has four chambers: two upper atria and two lower ventricles. The right atrium receives oxygen-poor blood from the body and passes it to the right ventricle, which pumps it to the lungs to pick up oxygen. The left atrium receives oxygen-rich blood from the lungs and passes it to the left ventricle, the most muscular chamber, which pumps it to the rest of the body through the aorta. Valves between the chambers keep the blood flowing in one direction.

%% open_qa
Why was Gutenberg's printing press so important?
-- output
Around 1440 in Mainz, Johannes Gutenberg developed a printing system built on movable metal type, oil-based ink and an adapted screw press. It made books far faster and cheaper to produce than copying by hand. Printed material spread quickly across Europe, which helped raise literacy, standardise languages and circulate new ideas. Printing played a major part in the Protestant Reformation, the spread of Renaissance learning and the Scientific Revolution, because scholars could share identical copies of texts and build on each other's work.

%% open_qa
Why did the Roman Empire split into eastern and western halves?
-- output
The empire had become too large to govern and defend from one centre, and it faced threats on several frontiers at once. In the late third century, Emperor Diocletian divided the administration among several rulers. The split became permanent after Theodosius I died in 395, when his sons Arcadius and Honorius ruled the East and the West. The Western Empire, weakened by invasions, political instability and economic problems, ended in 476. The Eastern Empire, often called the Byzantine Empire, lasted until Constantinople fell to the Ottomans in 1453.

%% open_qa
What was the Industrial Revolution?
-- output
The Industrial Revolution was the shift from hand production to machine manufacturing that began in Britain in the second half of the 18th century and later spread to Europe, North America and beyond. Key developments included mechanised textile production, improved steam engines, large-scale iron making and, later, railways. Work moved from homes and small workshops into factories, and many people moved from the countryside to growing cities. Over time it greatly increased productivity and wealth, but it also brought harsh working conditions, child labour and pollution.

%% open_qa
Who was Marie Curie?
-- output
Marie Curie (1867–1934) was a Polish-born physicist and chemist who worked in France. She did pioneering research on radioactivity, a term she coined, and with her husband Pierre Curie she discovered the elements polonium and radium. She was the first woman to win a Nobel Prize, sharing the 1903 Nobel Prize in Physics, and she won the 1911 Nobel Prize in Chemistry on her own. She remains the only person to have won Nobel Prizes in two different sciences.

%% open_qa
What was the purpose of the Great Wall of China?
-- output
The Great Wall was built mainly to protect Chinese states and empires from raids and invasions by nomadic peoples from the northern steppes. It is not one wall built at once: different dynasties built, joined and rebuilt walls over about two thousand years. Besides slowing attacks, the walls helped control trade and movement across the frontier, and watchtowers passed signals along them. Most of the well-preserved brick sections visitors see today date from the Ming dynasty (1368–1644). Contrary to a popular myth, the wall cannot be seen with the naked eye from the Moon.

%% open_qa
What happened during the Apollo 11 mission?
-- output
Apollo 11 was the NASA mission that first landed people on the Moon. It launched on 16 July 1969 with Neil Armstrong, Buzz Aldrin and Michael Collins on board. On 20 July, Armstrong and Aldrin landed in the lunar module Eagle, while Collins stayed in orbit in the command module Columbia. Armstrong became the first person to walk on the Moon, followed by Aldrin. They collected rock samples and set up experiments, and the crew splashed down safely in the Pacific Ocean on 24 July 1969.

%% open_qa
Why was the fall of the Berlin Wall significant?
-- output
The Berlin Wall, built by East Germany in 1961, divided East and West Berlin and became the best-known symbol of the Cold War division of Europe. On 9 November 1989, after weeks of mass protests, the East German authorities opened the border crossings, and crowds began tearing the wall down. Its fall marked the collapse of communist rule in East Germany, led to German reunification on 3 October 1990, and was a turning point in the end of the Cold War.

%% open_qa
Why are many of the world's large deserts found around 30 degrees latitude?
-- output
Near the equator, strong sunshine heats the air, which rises, cools and drops its moisture as heavy rain. This now-dry air flows towards the poles high in the atmosphere and sinks back to the surface at around 30 degrees north and south. Sinking air is compressed and warms up, which keeps it dry and stops clouds from forming. These belts of high pressure and dry air are why the Sahara, the Arabian Desert, the Sonoran Desert and the deserts of Australia lie roughly along these latitudes.

%% open_qa
What is the longest river in the world?
-- output
The Nile is usually listed as the longest river, at about 6,650 km, with the Amazon a close second at about 6,400 km. The ranking depends on how a river's source and mouth are defined, and some studies argue that the Amazon is longer. There is no debate about volume: the Amazon carries far more water than any other river, more than the next several largest rivers combined.

%% open_qa
How are mountains formed?
-- output
Most mountains form through plate tectonics. When two continental plates collide, the crust crumples, folds and thickens, pushing up ranges such as the Himalayas, which are still rising as India pushes into Asia. Where an oceanic plate sinks beneath another plate, melting rock feeds volcanoes that build mountain chains such as the Andes. Mountains can also form where the crust is stretched and breaks into blocks, some of which are lifted along faults. Over millions of years, water, ice and wind wear them down again.

%% open_qa
Why is the Dead Sea so salty?
-- output
The Dead Sea is a lake with no outlet. The Jordan River and smaller streams carry water and dissolved minerals into it, but the only way water leaves is by evaporating in the hot, dry climate. Evaporation removes the water and leaves the salts behind, so over thousands of years they have built up to about ten times the saltiness of the ocean. The water is so dense that people float easily in it, and almost nothing except some microbes can live there.

%% open_qa
What causes earthquakes?
-- output
Earthquakes happen when rocks along a fault in Earth's crust suddenly slip. Tectonic plates move slowly all the time, but friction can lock the rocks on either side of a fault while stress builds up over years or centuries. When the stress overcomes the friction, the rocks slip within seconds and release the stored energy as seismic waves that shake the ground. Most large earthquakes occur along plate boundaries, such as the belt of faults around the Pacific Ocean.

%% open_qa
Why does bread go stale?
-- output
Staling is mostly not about drying out. When bread bakes, starch absorbs water and becomes soft and disordered. As the bread sits, the starch molecules slowly realign into firmer, crystal-like structures, and moisture moves from the crumb to the crust. This process, called starch retrogradation, makes the crumb hard and crumbly. It happens fastest at refrigerator temperatures, so bread keeps better at room temperature or in the freezer. Briefly reheating stale bread reverses the process for a while, which is why toasting helps.

%% open_qa
How does a microwave oven heat food?
-- output
A microwave oven produces microwaves, usually at about 2.45 gigahertz. Water molecules are polar, meaning one end is slightly positive and the other slightly negative, so the rapidly changing electric field makes them rotate back and forth. That motion spreads to neighbouring molecules as heat. Microwaves only penetrate a few centimetres into food, so thick items are heated in their outer layer and the heat then moves inward by conduction. Stirring food or letting it stand evens out hot and cold spots.

%% open_qa
Why is salt spread on icy roads?
-- output
Salt lowers the freezing point of water. It dissolves in the thin film of liquid water on the ice and forms brine, which stays liquid below 0 °C. This melts the ice and stops new ice from bonding to the road surface. Ordinary rock salt (sodium chloride) works well down to about −9 °C; in colder weather it acts too slowly, so road crews may use other chemicals such as calcium chloride, or spread sand for grip.

%% open_qa
Why do my ears pop on an airplane?
-- output
Your middle ear is an air-filled space behind the eardrum, connected to the back of your throat by the Eustachian tube. When a plane climbs or descends, the cabin pressure changes faster than the pressure in your middle ear can adjust, so the eardrum is pushed in or out, which feels like fullness. When the Eustachian tube briefly opens, air moves through, the pressure equalises, and you hear a pop. Swallowing, yawning, chewing gum or gently blowing with your nose pinched can help the tube open.

%% open_qa
Why does a cut apple turn brown?
-- output
Cutting an apple breaks its cells and exposes their contents to oxygen. An enzyme called polyphenol oxidase then converts natural phenolic compounds in the fruit into substances that link together into brown pigments. The apple is still safe to eat. To slow browning, coat the cut surfaces with lemon juice, whose acid and vitamin C interfere with the reaction, or keep the slices in cold water or an airtight container.

%% open_qa
What happens when I type a web address into my browser and press Enter?
-- output
First, the browser looks up the domain name in DNS to find the server's IP address. It then opens a connection to that server, and if the address uses HTTPS it sets up encryption with TLS. The browser sends an HTTP request for the page, and the server replies with HTML. The browser parses the HTML, requests the extra resources it needs, such as CSS, JavaScript and images, works out the layout, and draws the page. Caching lets it skip some of these steps on later visits.

%% open_qa
How does public-key encryption work?
-- output
Public-key encryption uses a pair of mathematically linked keys. The public key can be shared with anyone, while the private key is kept secret. Data encrypted with the public key can only be decrypted with the matching private key, so anyone can send you a message that only you can read. The pair also supports digital signatures: you sign data with your private key, and others check the signature with your public key. The security rests on mathematical problems that are easy to compute in one direction but extremely hard to reverse without the private key, such as factoring very large numbers.

%% open_qa
What does an operating system do?
-- output
An operating system is the software that manages a computer's hardware and provides services to other programs. It decides which programs run on the processor and when, allocates memory, manages files and storage, and controls devices such as keyboards, screens and network cards through drivers. It also enforces security, for example by keeping programs from reading each other's memory and by checking user permissions. Finally, it provides a user interface, graphical or command-line. Windows, macOS, Linux, Android and iOS are common examples.

%% open_qa
Why do computers use binary?
-- output
Computers are built from billions of tiny electronic switches called transistors. It is much easier and more reliable to build circuits that tell apart two states, such as low and high voltage, than ten different levels. With only two states, small amounts of electrical noise rarely cause errors. Two-state values also map directly onto true/false logic, so all arithmetic and decision-making can be built from simple logic gates such as AND, OR and NOT. Numbers, text, images and sound can all be encoded as sequences of these bits.

%% open_qa
What is a hash function used for in computing?
-- output
A hash function takes data of any size and produces a fixed-size value called a hash or digest. Hash tables, such as Python dictionaries, use hashes to find items quickly. Cryptographic hashes such as SHA-256 work as fingerprints to check that a file has not been changed or corrupted, because even a tiny change to the input gives a completely different hash. They are also used for passwords: a well-designed system stores a salted hash made with a deliberately slow algorithm, such as bcrypt or Argon2, instead of the password itself.

%% open_qa
How does an email spam filter learn to recognise spam?
-- output
Most spam filters use machine learning. They are trained on large collections of emails already labelled as spam or not spam, and they learn which features tend to appear in each group: certain words and phrases, suspicious links, the sender's reputation, formatting tricks and so on. For a new email, the filter combines this evidence into a probability that the message is spam and moves it to the spam folder if the score is high enough. When users mark messages as spam or not spam, that feedback becomes new training data, so the filter keeps adapting to new tactics.

%% open_qa
What is version control, and why do programmers use it?
-- output
Version control is a system that records changes to files over time, so you can see who changed what and when, and go back to any earlier version. Git is the most widely used tool. Programmers use it because it lets them experiment safely on branches without breaking working code, combine work from many people on the same project, review changes before they are accepted, and track down when a bug was introduced. Pushed to a remote server, the history also serves as a backup.

%% open_qa
Why do stars twinkle but planets usually don't?
-- output
Twinkling is caused by Earth's atmosphere. Pockets of air at different temperatures bend light slightly differently, and they are constantly moving. Stars are so far away that they appear as single points of light, so these small shifts make their brightness and position flicker. Planets are much closer and appear as tiny disks rather than points. Light from different parts of a disk is disturbed in different ways and the effects average out, so planets usually shine steadily, except when they are low near the horizon.

%% open_qa
What is a black hole?
-- output
A black hole is a region of space where matter is packed so densely that gravity prevents anything, even light, from escaping once it crosses a boundary called the event horizon. Stellar black holes form when very massive stars collapse at the end of their lives. Supermassive black holes, with millions to billions of times the Sun's mass, sit at the centres of most large galaxies; the one at the centre of the Milky Way, Sagittarius A*, has about four million solar masses. Black holes cannot be seen directly, but astronomers detect them by their effects on nearby stars and gas.

%% open_qa
Why don't antibiotics work against colds?
-- output
Antibiotics attack structures and processes that bacteria need, such as their cell walls or their protein-making machinery. Colds are caused by viruses, which are not bacteria: they have no cell walls and multiply inside our own cells, so antibiotics have nothing to target. Taking antibiotics for a cold will not help you recover faster, and it can cause side effects and contribute to antibiotic resistance, where bacteria evolve to survive the drugs. Rest, fluids and time are the usual treatment for a cold.

%% open_qa
How fast does light travel?
-- output
In a vacuum, light travels at exactly 299,792,458 metres per second, or about 300,000 kilometres per second. The value is exact because the metre is defined using it. At that speed, light could circle Earth about 7.5 times in one second. Light from the Moon takes about 1.3 seconds to reach us, and sunlight takes about 8 minutes and 20 seconds. Light travels more slowly in materials such as water or glass, which is why it bends when it enters them.

%% open_qa
Why does the Moon have phases?
-- output
The Moon does not make its own light; the half facing the Sun is always lit. As the Moon orbits Earth, we see different amounts of that sunlit half. At new moon the lit side faces away from us, so the Moon is almost invisible. Over the following days we see a growing crescent, then a half moon (first quarter), then a gibbous moon, and then the full moon, when the whole lit side faces us, before the cycle reverses. A full cycle takes about 29.5 days. The phases are not caused by Earth's shadow; that happens only during a lunar eclipse.

%% open_qa
What is inflation in economics?
-- output
Inflation is a general rise in the prices of goods and services over time, which means each unit of money buys less than before. It is usually measured as the yearly percentage change in a price index, such as the consumer price index. Inflation can be driven by demand growing faster than the economy can supply, by rising costs such as energy or wages, or by rapid growth in the money supply. Many central banks aim for low, stable inflation, often around 2% a year, and raise interest rates when it runs too high.

%% open_qa
Why do we need sleep?
-- output
Sleep is essential for both the body and the brain. During sleep the brain consolidates memories and what you have learned, and it clears waste products that build up while you are awake. The body uses sleep to repair tissues, regulate hormones, including those that control appetite and stress, and support the immune system. Short-term sleep loss impairs attention, mood and reaction time, and long-term lack of sleep is linked to higher risks of obesity, diabetes, heart disease and depression. Most adults need about seven to nine hours a night.

%% open_qa
How do plants move water from the soil up to their leaves?
-- output
Water enters a plant through its root hairs, mainly by osmosis, because the root cells contain more dissolved substances than the surrounding soil water. It then travels up through a network of narrow tubes called xylem. The main driving force is transpiration: water evaporates from tiny pores in the leaves called stomata, and this loss pulls the continuous column of water upwards, because water molecules cling to each other and to the walls of the tubes. This mechanism lets trees more than 100 metres tall lift water to their highest leaves.

%% open_qa
Why is the ocean salty?
-- output
Rain is slightly acidic, so as it falls on land it slowly dissolves minerals from rocks. Rivers carry these dissolved substances, such as sodium, calcium and magnesium, into the sea, and hydrothermal vents on the sea floor add more. When seawater evaporates, the water leaves but the salts stay behind, so they have accumulated over hundreds of millions of years. Today seawater contains about 3.5% dissolved salts, mostly sodium chloride. The level stays roughly stable because salts are also removed into sediments on the sea floor.

%% open_qa
What was the Silk Road?
-- output
The Silk Road was a network of overland and sea trade routes that connected China with Central Asia, India, the Middle East and Europe from around the second century BCE until about the 15th century. It is named after the Chinese silk carried west, but merchants also traded spices, horses, glass, metals, paper and much more. Few traders travelled the whole route; goods usually passed through many hands. Ideas travelled too, including religions such as Buddhism, technologies such as papermaking, and also diseases such as the plague.

%% open_qa
Why is Antarctica considered a desert?
-- output
A desert is defined by how little precipitation it receives, not by heat or sand. Most of Antarctica gets less than 200 millimetres of precipitation a year, and its high interior gets less than 50 millimetres, which is drier than many hot deserts. The extreme cold means the air holds very little moisture, and the snow that does fall rarely melts, so it has built up into a thick ice sheet over millions of years. That makes Antarctica the largest desert on Earth.

%% how_to
How do I hard-boil eggs so the yolks aren't chalky or green?
-- output
Bring a pot of water to the boil, gently lower in eggs straight from the fridge, and turn the heat down to a steady simmer. Cook large eggs for about 10 minutes for a fully set but still tender yolk; 6 to 7 minutes gives a jammy centre. When the time is up, move the eggs into a bowl of ice water for at least 5 minutes. The quick chill stops the cooking, which prevents the greenish ring caused by overcooking, and it also makes the eggs easier to peel.

%% how_to
Give me some practical tips for falling asleep faster.
-- output
- Keep a regular schedule: go to bed and get up at about the same time every day, weekends included.
- Keep the bedroom cool, dark and quiet.
- Avoid caffeine in the afternoon and evening, and limit alcohol, which disturbs sleep later in the night.
- Put screens away 30 to 60 minutes before bed and do something calm instead, such as reading.
- If you are still awake after about 20 minutes, get up and do something quiet in dim light until you feel sleepy.
- Get daylight and some exercise during the day.

%% how_to
How can I create a strong password that I can still remember?
-- output
Use a passphrase: pick four or more random, unrelated words, such as "copper lantern giraffe pudding", and optionally add a number or symbol. Length matters more than complexity, and random words are far harder to guess than a single word with substitutions like "P@ssw0rd". Never reuse a password across sites, because one leak would expose them all. The easiest approach is to remember one strong passphrase for a password manager and let it generate unique passwords for everything else. Turn on two-factor authentication wherever you can.

%% how_to
How do I get a fresh coffee stain out of a cotton shirt?
-- output
1. Act quickly: blot up as much coffee as you can with a clean cloth. Don't rub.
2. Rinse the stain from the back of the fabric with cold running water to push the coffee out.
3. Rub a little liquid laundry detergent into the stain and leave it for 5 to 10 minutes.
4. Wash the shirt at the warmest temperature the care label allows.
5. Check the stain before drying. If any remains, repeat the treatment, because the heat of a dryer can set it permanently.

%% how_to
How should I prepare for a job interview?
-- output
Research the company: its products, recent news and values. Reread the job description and match each key requirement to a concrete example from your experience, ideally told as situation, action and result. Practise answering common questions out loud, such as "Tell me about yourself" and "Why do you want this role?". Prepare two or three thoughtful questions for the interviewer. Plan your outfit and route, or test your camera and connection for a video call, and be ready a few minutes early.

%% how_to
I've never run before. How should I start?
-- output
Start with walk-run intervals rather than continuous running. For example, alternate 1 minute of easy jogging with 2 minutes of walking for 20 to 30 minutes, three times a week, with a rest day in between. Run at a pace where you could still hold a conversation. Each week, lengthen the running intervals a little, and don't increase your total time by more than about 10% a week. Wear comfortable shoes that fit well, and take an extra rest day if anything hurts beyond normal muscle soreness.

%% how_to
How do I write a good Git commit message?
-- output
Start with a short summary line, ideally under about 50 characters, written in the imperative mood, such as "Fix crash when config file is empty". Leave a blank line, then add a body if the change needs explaining. In the body, explain why the change was made and any important consequences, rather than repeating what the diff already shows. Wrap body lines at about 72 characters, and mention related issue numbers if your project uses them. Keep each commit to one logical change so the message can describe it clearly.

%% how_to
What's a good way to back up my computer files?
-- output
Follow the 3-2-1 rule: keep at least three copies of important data, on two different kinds of storage, with one copy off-site. For example, keep the originals on your computer, an automatic backup on an external drive, and another copy with a cloud backup service. Automate the backups so they happen without you having to remember, and keep several older versions in case files are deleted or encrypted by ransomware. Most importantly, test restoring a few files now and then; a backup you have never restored is only a hope.

%% how_to
How can I spend less money on groceries?
-- output
- Plan the week's meals, write a shopping list and stick to it.
- Check what you already have before you shop, to avoid buying duplicates.
- Compare unit prices (per kilogram or litre) rather than package prices.
- Try store brands, which are often similar in quality.
- Buy seasonal produce, and use frozen fruit and vegetables, which keep longer and reduce waste.
- Cook larger batches and freeze portions for later.
- Don't shop when you're hungry.

%% how_to
I think I received a phishing email. What should I do?
-- output
Don't click any links, open attachments or reply. Check the sender's real address and look for warning signs such as urgent threats, requests for passwords or payment, and generic greetings. If the message claims to come from a company you use, contact the company through its official website or app, not through the email. Report the message with your mail provider's "report phishing" option, or to your IT team at work, and then delete it. If you already clicked a link or entered details, change that password at once, turn on two-factor authentication, and watch your accounts for unusual activity.

%% how_to
How do I keep my houseplants alive?
-- output
Match each plant to the light you have: check whether it needs bright, indirect or low light, and place it accordingly. Overwatering kills more houseplants than anything else, so water thoroughly only when the top few centimetres of soil feel dry, and always use pots with drainage holes. Empty the saucers so roots don't sit in water. Feed with diluted fertiliser in spring and summer, wipe dust off the leaves now and then, and repot when roots start growing out of the bottom of the pot.

%% how_to
How do I jump-start a car with a flat battery?
-- output
1. Park the working car close to the other one and turn off both engines.
2. Connect a red clamp to the positive (+) terminal of the flat battery, then the other red clamp to the positive terminal of the good battery.
3. Connect a black clamp to the negative (−) terminal of the good battery, then the last black clamp to bare metal on the other car's engine block, away from the battery.
4. Start the working car, wait a few minutes, then start the other car.
5. Remove the cables in reverse order and drive for at least 20 minutes to recharge.
Check your car's manual first, because some models have dedicated jump points.

%% how_to
What's the most effective way to learn a new language?
-- output
Consistency beats intensity: 20 to 30 minutes every day works better than one long session a week. Learn the most common words first and review them with a spaced-repetition flashcard app. Get plenty of input that you mostly understand, such as podcasts, graded readers or TV shows with subtitles in the language. Start speaking early, even imperfectly, with a tutor, a language-exchange partner or even by talking to yourself. Finally, connect the language to things you enjoy, like cooking, games or music, so that you keep going.

%% how_to
How can I give constructive feedback to a coworker?
-- output
Give it privately and soon after the event, while the details are fresh. Be specific and describe the behaviour and its effect, not the person: "In yesterday's meeting, the figures in the report didn't match the spreadsheet, so the client questioned our numbers" rather than "You're careless". Then ask for their view, since there may be context you don't know. Agree together on what to do differently, and offer help if it makes sense. Also give specific praise when things go well, so feedback isn't only linked to problems.

%% how_to
How do I create and use a Python virtual environment?
-- output
From your project folder, create the environment:

```
python3 -m venv .venv
```

Activate it with `source .venv/bin/activate` on macOS or Linux, or `.venv\Scripts\activate` on Windows; your prompt usually shows the environment's name. From then on, `pip install` puts packages inside `.venv` instead of your system Python. Record dependencies with `pip freeze > requirements.txt` and install them elsewhere with `pip install -r requirements.txt`. Run `deactivate` to leave the environment, and don't commit the `.venv` folder to version control.

%% how_to
How can I politely decline an invitation?
-- output
Reply promptly, thank the person, and give a short, honest answer without over-explaining. For example: "Thank you so much for inviting me to your dinner on Saturday. Unfortunately I can't make it, but I hope you all have a wonderful evening." If you'd like to see them another time, suggest it: "Could we get coffee next week instead?" You don't owe a detailed reason, and a warm, clear answer is kinder than a vague maybe.

%% how_to
How can I reduce eye strain when I work at a computer all day?
-- output
- Follow the 20-20-20 rule: every 20 minutes, look at something about 20 feet (6 metres) away for 20 seconds.
- Place the screen about an arm's length away, with its top at or slightly below eye level.
- Match the screen brightness to the room and reduce glare from windows and lamps.
- Increase the text size instead of leaning in.
- Blink often; staring at screens reduces blinking and dries the eyes.
- Have your eyes tested, since uncorrected vision makes strain worse.

%% how_to
What's the best way to store fresh herbs?
-- output
It depends on the herb. Soft, leafy herbs such as parsley, coriander and mint keep best like a bunch of flowers: trim the stems, stand them in a glass of water, loosely cover the leaves with a bag and keep them in the fridge. Basil is the exception; keep it in water at room temperature, because cold turns its leaves black. Woody herbs such as rosemary, thyme and sage should be wrapped in a slightly damp paper towel and kept in a container or bag in the fridge.

%% how_to
How can I make team meetings more productive?
-- output
- Check whether a meeting is needed at all; some updates work better as a written message.
- Share a short agenda in advance that states the goal of the meeting.
- Invite only the people who need to contribute or decide.
- Start and end on time, and give each agenda item a time limit.
- Keep the discussion on topic and park side issues for later.
- Finish by summarising decisions, action items, owners and deadlines, and send these notes round afterwards.

%% how_to
How can I calm my nerves before giving a presentation?
-- output
Preparation is the best remedy: rehearse the talk out loud several times, especially the first minute, so you can start confidently. Arrive early to check the room and equipment. Just before you begin, take a few slow breaths, making each breath out longer than the breath in, which helps slow your heart rate. Remember that some nervousness is normal and usually invisible to the audience. Focus on the message you want to share rather than on yourself, and speak to one or two friendly faces.

%% how_to
My Python script is slow. How do I find out which part is slow?
-- output
Measure before you change anything. Run the script under the built-in profiler:

```
python -m cProfile -s cumulative my_script.py
```

This lists functions with the total time spent in each, including the functions they call, so the slowest paths appear near the top. For a closer look at one function, the third-party `line_profiler` package shows the time per line. Once you know the hot spot, typical fixes are a better algorithm or data structure (for example, a set instead of a list for membership tests), avoiding repeated work inside loops, and using libraries such as NumPy for heavy numeric work.
'''

HANDWRITTEN_KNOWLEDGE = r'''
%% definition
What is photosynthesis?
-- output
Photosynthesis is the process by which plants, algae and some bacteria use light energy to make their own food. In plants, the green pigment chlorophyll inside chloroplasts captures sunlight, and that energy is used to combine carbon dioxide from the air with water to make glucose, a sugar the plant uses for energy and growth. Oxygen is released as a by-product. In short: carbon dioxide + water + light energy → glucose + oxygen. Photosynthesis produces the oxygen we breathe and is the base of most food chains.

%% definition
Define "opportunity cost" and give an example.
-- output
Opportunity cost is the value of the best alternative you give up when you make a choice. Because time, money and resources are limited, choosing one option means not choosing another. For example, if you spend Saturday at a concert instead of working an extra shift that pays 100 dollars, the cost of the concert is not just the ticket price: it also includes the 100 dollars you could have earned.

%% definition
What is an algorithm?
-- output
An algorithm is a finite, well-defined sequence of steps for solving a problem or completing a task. Each step is precise enough to follow without guesswork, and the process ends with a result. A recipe is an everyday example. In computing, algorithms describe how programs sort lists, search for information, compress files or find the shortest route on a map. Different algorithms for the same problem can differ greatly in how fast they run and how much memory they need.

%% definition
What is an API?
-- output
An API, or application programming interface, is a defined way for one piece of software to request services or data from another. It specifies which requests you can make, what information to send and what you get back, without exposing how the other system works inside. For example, a weather app might call a weather service's web API with a city name and receive the forecast as JSON. Software libraries also have APIs: the functions and classes they offer to your code.

%% definition
What does "biodiversity" mean?
-- output
Biodiversity, short for biological diversity, is the variety of life in a particular place or on Earth as a whole. It covers three levels: the genetic variety within species, the variety of species, and the range of ecosystems, such as forests, wetlands and coral reefs. High biodiversity makes ecosystems more resilient to disease and change, and it supports things people depend on, like pollination, clean water and fertile soil.

%% definition
What is a metaphor? Give an example.
-- output
A metaphor is a figure of speech that describes something by saying it is something else, suggesting a likeness without using "like" or "as". For example, "The classroom was a zoo" does not mean there were animals in it; it suggests the room was noisy and chaotic. A simile makes the comparison explicit instead: "The classroom was like a zoo."

%% definition
Explain compound interest with a simple example.
-- output
Compound interest is interest calculated on both the original amount and the interest already added. Because each period's interest earns interest in later periods, savings grow faster than with simple interest. For example, if you deposit $1,000 at 5% interest compounded yearly, you have $1,050 after one year. In the second year you earn 5% of $1,050, which is $52.50, giving $1,102.50. With simple interest you would have $1,100. The same effect makes unpaid debts grow quickly.

%% definition
What is an ecosystem?
-- output
An ecosystem is a community of living things, such as plants, animals, fungi and microbes, together with the non-living parts of their environment, such as water, soil, air and sunlight, all interacting as one system. Energy flows through it, usually starting with plants capturing sunlight, and nutrients are recycled as organisms eat, die and decompose. An ecosystem can be as large as a rainforest or as small as a pond.

%% definition
What does "latency" mean in networking?
-- output
Latency is the time it takes for data to travel from one point to another, usually measured in milliseconds. It is often reported as the round-trip time, the time for a message to reach a server and for the reply to come back, which is what the "ping" command measures. Latency depends on physical distance, the number of network hops and delays in routers. It is different from bandwidth: bandwidth is how much data can be sent per second, while latency is how long each piece takes to arrive.

%% definition
What is democracy?
-- output
Democracy is a system of government in which power ultimately belongs to the people. In a direct democracy, citizens vote on laws themselves; in a representative democracy, the more common form, they elect officials to decide for them. Key features usually include free and fair elections, the rule of law, protection of individual rights, freedom of speech and of the press, and the peaceful transfer of power. The word comes from the Greek "demos", meaning people, and "kratos", meaning power or rule.

%% definition
What is a prime number?
-- output
A prime number is a whole number greater than 1 that has exactly two divisors: 1 and itself. The first few primes are 2, 3, 5, 7, 11, 13 and 17. The number 1 is not prime, and 2 is the only even prime, because every other even number is divisible by 2. Numbers greater than 1 that are not prime, such as 12 = 2 × 2 × 3, are called composite. Every whole number greater than 1 can be written as a product of primes in exactly one way, ignoring the order of the factors.

%% definition
What does GDP measure?
-- output
GDP, or gross domestic product, measures the total market value of all final goods and services produced within a country in a given period, usually a quarter or a year. It is the most common measure of the size of an economy, and its growth rate is used to judge whether the economy is expanding or shrinking. GDP per person gives a rough idea of average living standards, but it does not capture inequality, unpaid work or environmental damage.

%% definition
Explain entropy in simple terms.
-- output
Entropy measures how many different ways the particles of a system can be arranged while the system looks the same overall; informally, it describes how spread out or disordered energy and matter are. The second law of thermodynamics says that the total entropy of an isolated system never decreases. That is why heat flows from hot objects to cold ones, why a drop of ink spreads through water but never gathers itself back together, and why no engine can turn heat into work with perfect efficiency.

%% definition
What is recursion in programming?
-- output
Recursion is when a function solves a problem by calling itself on a smaller version of the same problem. Every recursive function needs a base case, an input simple enough to answer directly, so that the calls stop; otherwise it would recurse forever. For example, the factorial of n can be defined as n × factorial(n − 1), with factorial(0) = 1 as the base case. Recursion fits problems with a nested structure, such as walking through folders or tree data structures.

%% definition
What is osmosis?
-- output
Osmosis is the movement of water across a semi-permeable membrane from a more dilute solution to a more concentrated one. The membrane lets water molecules through but blocks larger dissolved particles such as salt or sugar, so water moves in the direction that evens out the concentrations. Osmosis is how plant roots take up water, why a raisin swells when soaked in water, and why cucumber slices go limp in salty water.

%% definition
What does "irony" mean?
-- output
Irony is a contrast between what is expected and what actually happens, or between what is said and what is meant. Verbal irony is saying the opposite of what you mean, such as calling a downpour "lovely weather". Situational irony is when events turn out the opposite of what was expected, such as a fire station burning down. Dramatic irony is when the audience knows something a character does not. Plain bad luck or coincidence is not really irony, although the word is often used that way.

%% definition
What is a catalyst in chemistry?
-- output
A catalyst is a substance that speeds up a chemical reaction without being used up. It provides an alternative reaction pathway with a lower activation energy, so more molecules have enough energy to react. Because it is not consumed, a small amount can be used again and again. Examples include the platinum and palladium in a car's catalytic converter, and enzymes, the biological catalysts that drive nearly every reaction in living cells.

%% definition
What is cloud computing?
-- output
Cloud computing means using computing resources, such as servers, storage, databases and software, over the internet from a provider instead of owning and running them yourself. You usually pay for what you use and can scale up or down quickly. Services range from raw virtual machines (infrastructure as a service) to platforms for running your code (platform as a service) to complete applications such as web email (software as a service). The main benefits are flexibility and less hardware to manage; the trade-offs are ongoing costs and dependence on the provider.

%% definition
What is inertia?
-- output
Inertia is the tendency of an object to resist changes to its motion. An object at rest stays at rest, and a moving object keeps moving at the same speed in the same direction, unless a force acts on it; this is Newton's first law of motion. The more mass an object has, the more inertia it has, and the harder it is to start, stop or turn. Inertia is why passengers lurch forward when a bus brakes suddenly, and why seat belts matter.

%% comparison
What is the difference between weather and climate?
-- output
Weather is the state of the atmosphere at a particular place and time: today's temperature, rain, wind and cloud. It can change within hours. Climate is the average pattern of weather in a region over a long period, usually 30 years or more, including its typical ranges and extremes. In short, weather is what you get on a given day, and climate is what you can expect over many years. A cold week does not disprove a warming climate, just as one hot day does not prove it.

%% comparison
What is the difference between RAM and storage?
-- output
RAM (random-access memory) is the computer's fast, short-term working memory. It holds the programs and data in use right now, and its contents are lost when the power goes off. Storage, such as an SSD or a hard drive, keeps files, programs and the operating system permanently, even when the computer is off, but it is slower than RAM. The computer loads what it needs from storage into RAM to work on it. More RAM lets you run more things at once smoothly; more storage lets you keep more files.

%% comparison
How are viruses different from bacteria?
-- output
Bacteria are single-celled living organisms. They have their own cell machinery, reproduce on their own by dividing, and many are harmless or even helpful, like those in our gut. Viruses are much smaller and are not cells; they are genetic material in a protein coat and can only multiply by entering a host cell and taking over its machinery. This matters for treatment: bacterial infections can often be treated with antibiotics, which do not work on viruses. Viral infections are handled with vaccines, antiviral drugs or the body's own immune response.

%% comparison
What is the difference between a list and a tuple in Python?
-- output
Both hold ordered sequences of items, but a list is mutable and a tuple is immutable. You can add, remove or change items in a list after creating it, for example with `append()`, while a tuple cannot be changed once created. Lists are written with square brackets, `[1, 2, 3]`, and tuples with parentheses, `(1, 2, 3)`. Because tuples are immutable, they can serve as dictionary keys or set members if their items are hashable. Use a list for a collection that changes and a tuple for a fixed group of values, such as coordinates.

%% comparison
When should I use "affect" and when should I use "effect"?
-- output
Usually, "affect" is a verb meaning to influence something, and "effect" is a noun meaning the result of a change: "The rain affected the match" and "The rain had an effect on the match." A handy memory aid is that Affect is an Action and Effect is an End result. There are rarer uses as well: "effect" as a verb means to bring about ("to effect change"), and "affect" as a noun is a psychology term for visible emotion.

%% comparison
How can I tell an alligator from a crocodile?
-- output
Look at the snout and teeth. Alligators have a wide, rounded, U-shaped snout, and when the mouth is closed their lower teeth are mostly hidden. Crocodiles have a narrower, more pointed V-shaped snout, and the large fourth tooth on each side of the lower jaw stays visible when the mouth is closed. Alligators are usually darker and live mainly in fresh water in the south-eastern United States and eastern China. Crocodiles tolerate salt water better and are found across the tropics of Africa, Asia, Australia and the Americas.

%% comparison
Compare TCP and UDP.
-- output
Both are transport protocols used on the internet. TCP is connection-oriented: it sets up a connection, numbers the data, confirms delivery, resends lost packets and delivers everything in order. That makes it reliable but adds overhead and delay. UDP simply sends individual packets with no guarantee of delivery or order and no retransmission, which makes it faster and lighter. TCP suits web pages, email and file transfers, where every byte must arrive correctly. UDP suits live video, voice calls, online games and DNS lookups, where speed matters more than an occasional lost packet.

%% comparison
What is the difference between the mean and the median?
-- output
The mean is the sum of all the values divided by how many there are: the ordinary average. The median is the middle value when the numbers are sorted, or the average of the two middle values if there is an even number of them. The median is much less affected by extreme values. For example, for incomes of 30, 35, 40, 45 and 350 thousand, the mean is 100 thousand but the median is 40 thousand, which better describes a typical person. That is why incomes and house prices are often reported as medians.

%% comparison
What is the difference between baking soda and baking powder?
-- output
Baking soda is pure sodium bicarbonate. It needs an acidic ingredient in the recipe, such as buttermilk, yogurt, lemon juice or brown sugar, to react and release the carbon dioxide that makes a batter rise. Baking powder contains baking soda together with a dry acid and a little starch, so it only needs moisture (and, for double-acting powder, heat) to work. Baking soda is roughly three to four times stronger, so the two cannot be swapped one for one.

%% comparison
What is the difference between a comet and an asteroid?
-- output
Both are small bodies left over from the formation of the solar system, but they are made of different materials. Asteroids are mostly rock and metal, and most of them orbit the Sun in the asteroid belt between Mars and Jupiter. Comets are mixtures of ice, dust and rock, often described as dirty snowballs, and many come from the cold outer solar system. When a comet approaches the Sun, its ice turns to gas, forming a glowing cloud called a coma and often long tails pointing away from the Sun. Asteroids do not grow tails.

%% comparison
What are the main pros and cons of renting a home versus buying one?
-- output
Renting offers flexibility: moving is easier, upfront costs are lower, and the landlord usually pays for major repairs. On the other hand, rent builds no ownership, it can rise, and you have less control over the property. Buying lets you build equity as you pay off the mortgage, gives stability and the freedom to make changes, and protects you from rising rents. However, it needs a large deposit, brings costs such as maintenance, taxes and fees, and makes moving slower and more expensive. Buying usually makes more sense if you plan to stay for several years.

%% comparison
What is the difference between a compiled and an interpreted programming language?
-- output
With a compiled language such as C or Rust, a compiler translates the whole program into machine code before it runs, producing an executable. This usually gives fast execution, and many errors are caught before the program runs. With an interpreted language, an interpreter reads and executes the program as it goes, with no separate build step, which speeds up development and makes code easy to run on different platforms, but execution is typically slower. In practice the line is blurred: Python compiles to bytecode that is then interpreted, and Java and JavaScript engines compile code while it runs.

%% comparison
What is the difference between empathy and sympathy?
-- output
Sympathy is feeling concern or pity for someone's situation from your own point of view: "I'm sorry you're going through that." Empathy is trying to understand and share what the other person feels, as if from their side: "That sounds really frightening; I can see why you're upset." Sympathy can create some distance, while empathy builds connection because the person feels understood. Both can be kind, but empathy is usually more helpful when someone needs support.

%% comparison
How does mitosis differ from meiosis?
-- output
Mitosis is the cell division used for growth and repair. One division produces two daughter cells that are genetically identical to the parent cell and have the full set of chromosomes. Meiosis is used to make sex cells such as eggs and sperm. It involves two rounds of division and produces four cells, each with half the usual number of chromosomes. During meiosis, chromosomes also swap segments (crossing over) and are shuffled, so each resulting cell is genetically unique. That is why siblings look different unless they are identical twins.

%% comparison
What is the difference between HTTP and HTTPS?
-- output
HTTP is the protocol browsers use to request and receive web pages. HTTPS is HTTP sent over an encrypted TLS connection. With plain HTTP, anyone on the network path, such as someone on the same public Wi-Fi, can read or alter the data, including passwords. HTTPS encrypts the traffic and uses certificates to confirm that you are connected to the real website. Browsers mark plain HTTP sites as "not secure". Note that HTTPS protects the connection; it does not prove that the site itself is trustworthy.

%% list_brainstorm
List five ways to reduce energy use at home.
-- output
1. Switch to LED bulbs and turn off lights in empty rooms.
2. Turn the heating down by 1 °C (or the air conditioning up) and seal draughts around doors and windows.
3. Wash clothes at lower temperatures and air-dry them when you can.
4. Switch devices off at the wall instead of leaving them on standby.
5. Run the dishwasher and washing machine only with full loads.

%% list_brainstorm
Suggest six names for a small neighbourhood bakery.
-- output
1. The Rising Crust
2. Corner Crumb
3. Morning Loaf
4. Flour & Fold
5. Golden Hour Bakehouse
6. The Daily Knead

%% list_brainstorm
Give me ideas for things to do with kids on a rainy day at home.
-- output
- Build a blanket fort and read stories inside it by torchlight.
- Bake simple biscuits or decorate cupcakes together.
- Set up an indoor scavenger hunt with picture clues.
- Put on a puppet show with socks and paper bags.
- Have a dance party or play musical statues.
- Make a collage from old magazines.
- Try a simple science experiment, such as growing salt crystals or making a baking soda volcano.
- Build a marble run from cardboard tubes.

%% list_brainstorm
List the planets of the solar system in order from the Sun.
-- output
1. Mercury
2. Venus
3. Earth
4. Mars
5. Jupiter
6. Saturn
7. Uranus
8. Neptune

Pluto was reclassified as a dwarf planet in 2006.

%% list_brainstorm
Brainstorm project ideas for a middle-school science fair.
-- output
- Which materials keep a cup of hot water warm the longest?
- Does the colour of light affect how fast cress seeds grow?
- Which brand of paper towel absorbs the most water?
- How does the angle of a ramp change how far a toy car rolls?
- Does background music affect how quickly people solve a puzzle?
- Which household liquids slow the browning of apple slices?
- How does adding salt change the temperature at which water freezes?
- Which paper aeroplane design flies the farthest?

%% list_brainstorm
Suggest some healthy snacks I can take to work.
-- output
- An apple or a pear with a small handful of almonds
- Carrot, cucumber and pepper sticks with hummus
- Plain yogurt with berries
- A hard-boiled egg
- Roasted chickpeas
- Wholegrain crackers with cheese
- A banana with peanut butter
- Homemade trail mix of nuts, seeds and a few raisins

%% list_brainstorm
Give me ideas for team-building activities for a fully remote team.
-- output
- A weekly 15-minute virtual coffee with random pairings
- Online quiz rounds with themes chosen by team members
- Show and tell, where people share a hobby, a pet or an object from their desk
- A shared playlist everyone adds songs to
- Remote escape rooms or online multiplayer games
- A photo challenge, such as "the view from your window today"
- Five-minute lightning talks where anyone teaches a skill
- A team step challenge for charity

%% list_brainstorm
What should I pack for a day hike?
-- output
- Plenty of water, plus snacks and lunch
- A map or downloaded offline map, and a charged phone
- An extra warm layer and a waterproof jacket
- Sun protection: hat, sunglasses and sunscreen
- A small first-aid kit, including blister plasters
- A head torch, in case you are out longer than planned
- A whistle for emergencies
- Comfortable, broken-in walking shoes and good socks
Tell someone your route and when you expect to be back.

%% list_brainstorm
Suggest simple ways to practise gratitude every day.
-- output
- Write down three things you are grateful for each evening.
- Send a short thank-you message to someone who helped you.
- Notice one pleasant detail on your daily walk or commute.
- Start family meals by sharing one good thing from the day.
- When you thank people, use their name and say specifically what they did.
- Keep a jar of notes about good moments to reread later.
- When something goes wrong, also note one thing that went right.

%% list_brainstorm
What are the three primary colours of light?
-- output
The three primary colours of light are red, green and blue. Mixing them in different proportions produces most colours the human eye can see, and all three at full strength make white. This additive RGB system is what screens use. Mixing paints or inks works differently: there the subtractive primaries are cyan, magenta and yellow.

%% list_brainstorm
Give me five good questions to ask at the end of a job interview.
-- output
1. What would success look like in this role after the first six months?
2. What are the biggest challenges the team is facing right now?
3. How would you describe the way the team works and communicates?
4. What opportunities are there for learning and growth?
5. What are the next steps in the hiring process?

%% list_brainstorm
What are some creative ways to reuse empty glass jars?
-- output
- Store pantry staples such as rice, lentils, nuts and spices.
- Use them as drinking glasses or for overnight oats.
- Turn them into candle holders or fairy-light lanterns.
- Organise screws, buttons, pens or craft supplies.
- Grow herbs or root plant cuttings in water.
- Fill them with homemade jam or bath salts as small gifts.
- Use them as vases for a few flowers.

%% list_brainstorm
List common reasons a website might load slowly.
-- output
- Large, uncompressed images
- Too many or too large JavaScript and CSS files
- Slow server responses caused by heavy database queries or underpowered hosting
- No caching, so the same content is rebuilt or downloaded on every visit
- Many third-party scripts, such as ads, trackers and chat widgets
- No content delivery network, so users far from the server wait longer
- Render-blocking scripts that delay the first display of the page
- Chains of redirects

%% list_brainstorm
Suggest some low-cost date ideas.
-- output
- Have a picnic in a park.
- Cook a new recipe together at home.
- Go for a sunset walk or hike.
- Visit a free museum or gallery.
- Have a board game or card game night.
- Go stargazing away from city lights.
- Wander round a farmers' market.
- Watch a film at home and review it like critics afterwards.
- Volunteer together for a few hours.

%% list_brainstorm
List the seven continents from largest to smallest by area.
-- output
1. Asia
2. Africa
3. North America
4. South America
5. Antarctica
6. Europe
7. Australia (often grouped with nearby islands as Oceania)

%% list_brainstorm
Brainstorm features for a simple to-do list app.
-- output
- Add, edit, complete and delete tasks
- Due dates with optional reminders
- Recurring tasks, such as "every Monday"
- Lists or tags to group tasks, like Work, Home and Shopping
- Priority levels and sorting by priority or date
- Search and filters, such as "due today"
- Sync between phone and computer, and offline use
- A quick-add shortcut and a dark mode
- Shared lists for family or colleagues

%% list_brainstorm
Give me some conversation starters for a networking event.
-- output
- "What brings you to this event?"
- "What are you working on at the moment?"
- "What's the most interesting project you've worked on recently?"
- "Have you been to this event before? Any talks you'd recommend?"
- "How did you get started in your field?"
- "What are you hoping to get out of today?"
Follow up on their answers and share a little about yourself too, so it feels like a conversation rather than an interview.

%% creative
Write a haiku about autumn rain.
-- output
Cold rain on the roof
maple leaves let go at last
the gutter runs red

%% creative
Write a haiku about the given topic.
-- input
Debugging code late at night
-- output
Midnight, one more test
the red error turns to green
coffee has gone cold

%% creative
Write a haiku about morning coffee.
-- output
Steam curls from the cup
the kitchen slowly wakes up
first sip, then the day

%% creative
Write a two-sentence horror story.
-- output
I finally fixed the baby monitor, so the static is gone. Now I can clearly hear the voice that has been singing my daughter to sleep every night.

%% creative
Write a two-sentence story about time travel.
-- output
On her first trip into the past, the inventor stepped out of her machine and found a note on the ground in her own handwriting. It said only: "Don't trust the version of you who comes back."

%% creative
Write a catchy slogan for a bicycle repair shop.
-- output
"We fix the wheels that move your world."

Other options:
- "Back in the saddle by tomorrow."
- "Good as new, one spoke at a time."

%% creative
Write a limerick about a lazy cat.
-- output
A cat with a taste for the sun
Would nap until noon, then be done;
She'd stretch on the mat,
Eat lunch, and then that
Was all of her work, and her fun.

%% creative
Write a short four-line poem about the sea.
-- output
The tide comes in with silver hands
And writes its name across the sands;
Then, lest the shore should keep the lines,
It takes them back and leaves no signs.

%% creative
Write a short product description using the features listed.
-- input
Product: reusable water bottle. Features: stainless steel, keeps drinks cold for 24 hours and hot for 12, 750 ml, leak-proof lid, fits car cup holders.
-- output
Meet the bottle that keeps up with your day. Made from durable stainless steel, it keeps drinks ice-cold for 24 hours or piping hot for 12. The 750 ml size holds plenty for a long commute or a workout, the leak-proof lid means you can toss it in your bag without worry, and its slim shape slips into car cup holders. Refill it, reuse it, and leave single-use bottles behind.

%% creative
Create a slogan for a campaign encouraging people to recycle.
-- output
"Give it another life: recycle."

Other options:
- "Sort today, save tomorrow."
- "Less waste starts with you."

%% creative
Write an opening line for a mystery novel.
-- output
The lighthouse keeper had been dead for three days, which made it very strange that the light had come on every night.

%% creative
Write a short fable with a moral.
-- output
A crow collected every shiny thing she found: bottle caps, buttons, a silver ring. Her nest sparkled, and the other birds admired it. But each treasure made the nest heavier, and one windy night the branch cracked and dropped everything into the river. The next morning a sparrow found the crow on a bare branch. "At least you still have your wings," the sparrow said, and for the first time the crow noticed how lightly she could fly.

Moral: What we hold on to can weigh us down more than it lifts us up.

%% creative
Write a short toast for my best friend's wedding.
-- input
Friend's name: Daniel. Partner's name: Priya. We met at university, and he once got lost on a hiking trip I planned.
-- output
Good evening, everyone. I've known Daniel since our first week at university, and in that time I've seen him get lost on a hiking trip I planned, which, to be fair, was mostly my map's fault. But I have never seen him as sure of his direction as he is with Priya. Priya, you bring out the best in him, and it has been a joy to watch you two build a life together. Please raise your glasses: to Daniel and Priya, and to a lifetime of adventures, with better maps. Cheers!

%% creative
Write an original riddle and give its answer.
-- output
Riddle: I grow shorter every time I help you write, and I wear a small hat that eats my own mistakes. What am I?

Answer: A pencil with an eraser on the end.

%% creative
Write a tagline for a public library.
-- output
"Every story, every question, free for everyone."

%% creative
Write a short birthday message for my grandmother.
-- input
Her name is Rosa, she is turning 80, and she loves gardening.
-- output
Happy 80th birthday, Grandma Rosa! Like the garden you tend so lovingly, our family has grown and blossomed thanks to your patience and warmth. Thank you for every lesson, every story and every tomato you have sent home with us. We hope your day is full of sunshine, flowers and the people who love you. Here's to many more seasons together!

%% creative
Write a short, friendly out-of-office email reply.
-- output
Hello, and thanks for your message. I'm out of the office until Monday with limited access to email, and I'll reply as soon as I can when I'm back. If your request is urgent, please contact my colleague Sam Lee at sam.lee@example.com. Have a great day!
'''

HANDWRITTEN_TEXT = r'''
%% rewriting
Paraphrase this sentence in simpler words.
-- input
The municipality has implemented a comprehensive initiative aimed at ameliorating the condition of its deteriorating road infrastructure.
-- output
The city has started a big project to fix its roads, which are in poor condition.

%% rewriting
Rewrite this sentence in the active voice.
-- input
The quarterly report was written by the finance team and was approved by the board on Friday.
-- output
The finance team wrote the quarterly report, and the board approved it on Friday.

%% rewriting
Make this sentence more concise.
-- input
Due to the fact that it was raining very heavily at that point in time, we made the decision to postpone the picnic until a later date.
-- output
Because it was raining heavily, we decided to postpone the picnic.

%% rewriting
Rewrite this explanation so a ten-year-old can understand it.
-- input
Vaccination stimulates the adaptive immune system to generate antibodies and memory cells specific to a pathogen's antigens, conferring protection against subsequent infection.
-- output
A vaccine is like a practice drill for your body. It shows your immune system what a germ looks like without making you ill. Your body learns to make special germ fighters called antibodies, and it remembers the germ. If the real germ ever shows up, your body recognises it and fights it off quickly.

%% rewriting
Rewrite the following as a bulleted list.
-- input
To set up the printer, first unpack it and remove all the orange tape, then plug in the power cable and switch it on, after which you should insert the ink cartridges and load some paper, and finally install the driver from the manufacturer's website.
-- output
- Unpack the printer and remove all the orange tape.
- Plug in the power cable and switch the printer on.
- Insert the ink cartridges.
- Load some paper.
- Install the driver from the manufacturer's website.

%% rewriting
Rewrite this headline so that it is calm and not sensational.
-- input
SHOCKING: Scientists Say Coffee Could DESTROY Your Health!!!
-- output
Researchers Examine Possible Health Risks of Drinking Coffee

%% rewriting
Turn these notes into a short, clear paragraph.
-- input
team lunch friday 12:30 - italian place on king st - company pays - tell maria by wed if vegetarian - no lunch meeting that day
-- output
Our team lunch is this Friday at 12:30 at the Italian restaurant on King Street, and the company is paying. If you are vegetarian, please let Maria know by Wednesday. There will be no lunch meeting that day.

%% rewriting
Rewrite this sentence in the passive voice.
-- input
The storm knocked down three power lines near the school.
-- output
Three power lines near the school were knocked down by the storm.

%% rewriting
Rewrite this sentence without the business jargon.
-- input
Going forward, we need to leverage our core competencies to drive synergies and move the needle on customer engagement.
-- output
From now on, we should use what we do best and work together across teams to get customers more interested in what we offer.

%% rewriting
Rewrite this passage in the third person, using "she".
-- input
I started my bakery in 2015 with one oven and a lot of hope. Today I employ twelve people, and I still bake the first loaf every morning myself.
-- output
She started her bakery in 2015 with one oven and a lot of hope. Today she employs twelve people, and she still bakes the first loaf every morning herself.

%% rewriting
Make this product description more appealing to customers.
-- input
This is a desk lamp. It has an LED bulb. You can change the brightness. The arm bends.
-- output
Light your workspace exactly the way you like it. This desk lamp uses an energy-efficient LED, lets you turn the brightness up for detailed work or down for a cosy glow, and has a flexible arm that puts the light right where you need it.

%% rewriting
Rewrite these instructions as numbered steps.
-- input
Before you leave, make sure the windows are closed. Also switch off the lights and the coffee machine. Set the alarm with the code, then lock the front door behind you.
-- output
1. Close the windows.
2. Switch off the lights.
3. Switch off the coffee machine.
4. Set the alarm using the code.
5. Lock the front door behind you.

%% rewriting
Rewrite this clause in plain English.
-- input
The lessee shall remit payment of the rent in full no later than the fifth calendar day of each month, failing which a late fee shall be incurred.
-- output
You must pay the full rent by the 5th of each month, or you will be charged a late fee.

%% rewriting
Write a clearer, more specific subject line for this email.
-- input
Subject: hey
Body: Can we move Thursday's budget review to Friday at 10?
-- output
Subject: Request to move Thursday's budget review to Friday at 10:00

%% rewriting
Rewrite the paragraph in the past tense.
-- input
Every morning Leo walks to the harbour. He buys a coffee from the same stall, watches the fishing boats come in, and writes a few lines in his notebook before work.
-- output
Every morning Leo walked to the harbour. He bought a coffee from the same stall, watched the fishing boats come in, and wrote a few lines in his notebook before work.

%% rewriting
Rewrite this sentence in a more positive tone.
-- input
You can't get a refund unless you bring the receipt.
-- output
We'll be happy to give you a refund when you bring your receipt.

%% rewriting
Combine these short sentences into one smooth sentence.
-- input
The museum opened in 1998. It is near the river. It has a large collection of maps.
-- output
The museum, which opened near the river in 1998, has a large collection of maps.

%% summarization
Summarise the following paragraph in one sentence.
-- input
Honeybees are important pollinators for many crops, including apples, almonds and blueberries. As a bee collects nectar, pollen sticks to the hairs on its body and is carried to the next flower, allowing the plant to produce fruit and seeds. In recent decades, beekeepers in many countries have reported unusually high colony losses. Researchers point to several causes acting together, including parasitic mites, diseases, pesticide exposure and a lack of varied flowers to feed on.
-- output
Honeybees pollinate many important crops, but colonies in many countries have suffered heavy losses from a combination of mites, disease, pesticides and poor food sources.

%% summarization
Summarise this memo in three bullet points.
-- input
Dear all, our lease on the Harbour Street office ends on 30 June. We have signed a lease for the third floor of the Alder Building on Mill Road, and the move will take place over the weekend of 27–28 June. Please pack your personal items in the boxes provided by Wednesday 25 June and label them with your name. IT will move all computers and monitors, so please do not pack them yourself. The new office has more meeting rooms and bicycle storage.
-- output
- The office moves to the third floor of the Alder Building on Mill Road over the weekend of 27–28 June.
- Staff must pack and label their personal items in the boxes provided by Wednesday 25 June; IT will move computers and monitors.
- The new office has more meeting rooms and bicycle storage.

%% summarization
Summarise this customer review in one sentence.
-- input
I bought these headphones for my daily train commute. The noise cancellation is excellent and the battery easily lasts the whole week. Sound quality is warm and clear. My only complaints are that they feel a bit tight after about two hours and the carrying case is bulky. Overall I'm happy and would buy them again.
-- output
The reviewer is happy with the headphones' excellent noise cancellation, long battery life and clear sound, though they feel tight after long use and the case is bulky.

%% summarization
Give a short summary of this passage.
-- input
The first ancestor of the bicycle was the "running machine" that Karl Drais built in Germany in 1817. It had two wheels and handlebars but no pedals, so riders pushed it along with their feet. In the 1860s, French makers fixed pedals to the front wheel, producing the "boneshaker". The "safety bicycle" of the 1880s, with two wheels of similar size and a chain driving the rear wheel, plus John Boyd Dunlop's air-filled tyre of 1888, set the design used today.
-- output
The bicycle evolved from Drais's pedal-less running machine of 1817 and the pedal-driven "boneshaker" of the 1860s into the chain-driven safety bicycle of the 1880s, which, with Dunlop's 1888 air-filled tyre, set the modern design.

%% summarization
Summarise the key decisions from this meeting transcript.
-- input
Ana: We need to decide on the launch date. Marketing wants 3 March.
Ben: Testing won't be finished by then. The earliest realistic date is 17 March.
Ana: Fine, let's go with 17 March. What about the price?
Chen: Our survey suggests 12 dollars a month is acceptable to most users.
Ana: Agreed, 12 dollars it is. Ben, can you send the test plan by Friday?
Ben: Yes, I'll do that.
-- output
The team agreed to launch on 17 March, because testing will not be finished by 3 March, and to set the price at 12 dollars a month. Ben will send the test plan by Friday.

%% summarization
Summarise this story in two sentences.
-- input
Mira had run the village's tiny bookshop for forty years, and every winter she feared it would be the last. This year the heating broke in November, and she quietly put a "Closing soon" sign in the window. Within a week, children began leaving drawings on the doorstep, the baker offered her a warm corner of his shop, and the carpenter's son fixed the boiler for the price of three novels. By Christmas, the sign was gone, replaced by one that read, "Open, thanks to all of you."
-- output
When the heating broke, the elderly owner of a small village bookshop decided she would have to close. The villagers rallied round to help, and by Christmas the shop could stay open thanks to them.

%% summarization
Write a one-sentence TL;DR of this text.
-- input
Many companies that switched to remote work during the pandemic have since adopted hybrid arrangements. Supporters say working from home saves commuting time, reduces office costs and lets employers hire from a wider area. Critics argue that it can weaken team relationships, make mentoring junior staff harder and blur the line between work and home. As a result, many employers now ask staff to come in on set days while allowing remote work the rest of the week.
-- output
TL;DR: Remote work saves time and money but can strain teamwork and mentoring, so many employers have settled on hybrid schedules with set office days.

%% summarization
Summarise these release notes for non-technical users.
-- input
Version 2.4.0: Added dark mode (Settings > Appearance). Reduced app start-up time by around 40% through lazy loading of modules. Fixed a crash when exporting reports containing emoji. Fixed incorrect totals when a filter excluded all rows. Deprecated the legacy CSV importer; it will be removed in 3.0. Upgraded the bundled database driver to fix a security vulnerability.
-- output
This update adds a dark mode (Settings > Appearance) and makes the app start noticeably faster. It also fixes a crash when exporting reports with emoji, corrects wrong totals in some filtered views, and includes a security fix. The old CSV importer will be removed in version 3.0.

%% summarization
Summarise the paragraph in one sentence.
-- input
Coral reefs cover less than one percent of the ocean floor but support roughly a quarter of all known marine species. Corals get much of their food from tiny algae living in their tissues. When the water becomes too warm for too long, corals expel these algae and turn white, a process known as bleaching. Bleached corals are not dead, but they are starving, and if high temperatures continue, many of them die.
-- output
Coral reefs support a large share of marine life, but long periods of warm water make corals expel their food-producing algae and bleach, which can kill them if the heat continues.

%% summarization
Summarise this notice in plain language.
-- input
Please be advised that the water supply to all apartments in Building B will be shut off on Tuesday between 9:00 and 15:00 to allow for the replacement of the main valve. Residents are advised to store sufficient water for drinking and sanitation during this period. Should the works be completed ahead of schedule, the supply will be restored earlier. We apologise for any inconvenience.
-- output
Building B will have no water on Tuesday from 9:00 to 15:00 while the main valve is replaced, so store some water beforehand; it may come back sooner if the work finishes early.

%% summarization
Summarise this match report in two sentences.
-- input
Riverside United came from behind to beat Hillcrest 2-1 on Saturday. Hillcrest took the lead in the 12th minute with a header from a corner and defended well for most of the first half. After the break, Riverside pressed higher, and substitute Tomas Varga equalised in the 63rd minute. Captain Ellie Brooks then scored the winner with a long-range shot five minutes before full time. The win moves Riverside up to third in the table.
-- output
Riverside United beat Hillcrest 2-1 after falling behind to an early header. Substitute Tomas Varga equalised in the 63rd minute and captain Ellie Brooks scored a late winner, lifting Riverside to third in the table.

%% summarization
Summarise this status update in three bullet points.
-- input
The website redesign is mostly on track. The new home page and product pages are finished and have passed accessibility checks. The checkout page is about a week behind schedule because the payment provider changed its API, and the team is now updating the integration. The content team still needs final images for the About page. We still expect to launch on the planned date, but the checkout delay leaves no buffer.
-- output
- The home page and product pages are finished and have passed accessibility checks.
- Checkout is about a week late because the payment provider changed its API, and the About page still needs final images.
- Launch is still planned for the original date, but there is no slack left in the schedule.

%% summarization
Summarise the following text in one or two sentences.
-- input
In the year 79 CE, Mount Vesuvius erupted near the Bay of Naples in Italy. Clouds of hot ash, gas and rock buried the Roman towns of Pompeii and Herculaneum. Because the towns were covered so quickly, buildings, paintings, everyday objects and even the shapes of victims were preserved under the ash. Systematic excavations began in the 18th century, and the sites now give historians an unusually detailed picture of daily life in the Roman Empire.
-- output
The eruption of Mount Vesuvius in 79 CE buried Pompeii and Herculaneum so quickly that their buildings and objects were preserved. Excavated since the 18th century, the towns offer a detailed view of everyday Roman life.

%% summarization
Summarise these instructions in one sentence.
-- input
To reset the router, first make sure it is switched on. Find the small hole labelled RESET on the back. Insert a straightened paperclip and press the button inside for about ten seconds, until the lights on the front flash. Release the button and wait two to three minutes for the router to restart. After the reset, all settings, including the Wi-Fi name and password, return to the factory defaults printed on the label underneath.
-- output
With the router switched on, hold the recessed RESET button with a paperclip for about ten seconds and wait a few minutes; it restarts with the factory settings printed on its label.

%% summarization
Summarise this paragraph in two sentences.
-- input
The water cycle describes how water moves continuously between the oceans, the atmosphere and the land. Heat from the Sun evaporates water from oceans, lakes and soil, and plants release more through their leaves. As the water vapour rises, it cools and condenses into tiny droplets that form clouds. When the droplets combine and grow heavy enough, they fall as rain, snow or hail. The water then flows into rivers, soaks into the ground or collects in ice sheets, and eventually returns to the sea, where the cycle begins again.
-- output
In the water cycle, water evaporates from oceans, land and plants, condenses into clouds and falls as rain, snow or hail. It then returns to the sea through rivers, groundwater and ice, and the cycle repeats.

%% summarization
Summarise this email in one sentence.
-- input
Hi Jordan, thanks for sending the draft contract. I've read it through and it looks good overall. Two points: first, the payment terms say 60 days, but we agreed on 30 days in our call; second, the start date should be 1 September rather than 1 August. If you can make those two changes, I'll sign it this week. Best, Kim
-- output
Kim is happy with the draft contract and will sign it this week once Jordan changes the payment terms to 30 days and the start date to 1 September.

%% classification
Classify the sentiment of this review as positive, negative or mixed.
-- input
The delivery was two days late and the box was crushed, but the vase inside survived and looks beautiful.
-- output
Mixed. The customer is unhappy about the late delivery and the damaged box but pleased with the vase itself.

%% classification
What is the sentiment of this post? Answer positive, negative or neutral.
-- input
Finally got my exam results back and I passed every subject!! So relieved.
-- output
Positive

%% classification
Classify the sentiment of the following sentence as positive, negative or neutral.
-- input
The train to Leeds departs from platform 4 at 10:15.
-- output
Neutral. The sentence simply states a fact and expresses no opinion or emotion.

%% classification
Is the sentiment of this restaurant review positive or negative?
-- input
We waited forty minutes for cold pasta, and the waiter seemed annoyed every time we asked for anything. Never again.
-- output
Negative. The reviewer complains about the long wait, the cold food and the unfriendly service, and says they will not return.

%% classification
Rate the sentiment of this review on a scale from 1 (very negative) to 5 (very positive).
-- input
Decent hotel for the price. The room was clean and the staff were helpful, though the walls were thin and breakfast was pretty basic.
-- output
4. The reviewer is mostly satisfied (clean room, helpful staff, fair value) but mentions some drawbacks (thin walls, a basic breakfast).

%% classification
Classify the sentiment of this customer message.
-- input
I've emailed support three times about my broken charger and nobody has replied. This is ridiculous.
-- output
Negative. The customer is frustrated that repeated requests to support have gone unanswered.

%% classification
Does this film review express a positive or a negative opinion?
-- input
I expected a dull costume drama, but the sharp dialogue and the lead's performance had me gripped from start to finish.
-- output
Positive. Although the reviewer expected to be bored, they praise the dialogue and the lead performance and say the film gripped them throughout.

%% classification
Label each sentence as positive, negative or neutral.
-- input
1. The new park is a wonderful place to relax.
2. The meeting has been moved to Thursday.
3. My phone battery dies before lunch every day.
-- output
1. Positive
2. Neutral
3. Negative

%% classification
Classify the topic of this headline as one of: sports, politics, technology, health, business.
-- input
Chipmaker unveils processor that uses 30% less power in laptops
-- output
Technology

%% classification
Which category best fits this news snippet: sports, politics, technology, health or business?
-- input
The midfielder signed a four-year contract with the club after impressing during the preseason tour.
-- output
Sports

%% classification
Classify this headline by topic: sports, politics, technology, health or business.
-- input
Study finds that a brisk 20-minute daily walk lowers blood pressure in older adults
-- output
Health

%% classification
Assign one topic to the following text: sports, politics, technology, health or business.
-- input
Parliament voted late on Tuesday to approve the new budget after a long debate over tax cuts.
-- output
Politics

%% classification
Classify the topic of this sentence: sports, politics, technology, health or business.
-- input
Shares in the retail chain fell 8% after it reported lower-than-expected holiday sales.
-- output
Business

%% classification
Is this question about science, history, geography or cooking?
-- input
How long should I rest a steak after grilling it?
-- output
Cooking

%% classification
Is this message spam or not spam?
-- input
CONGRATULATIONS! You have been selected to receive a $1,000 gift card. Click here within 24 hours to claim your prize!
-- output
Spam. It announces an unexpected prize, creates urgency with a deadline and asks you to click a link, which are typical signs of spam and phishing.

%% classification
Classify this email as spam or not spam.
-- input
Hi Sara, attached are the slides from this morning's meeting. Let me know if anything is missing. Thanks, Omar
-- output
Not spam. It is an ordinary message between colleagues about a specific meeting, with no suspicious requests.

%% classification
Is the following text message spam? Answer "spam" or "not spam".
-- input
Your parcel could not be delivered. Pay the 1.99 redelivery fee now at parcel-redeliver.example/pay to avoid return.
-- output
Spam. This is a common delivery scam: it asks for a small payment through an unofficial link. Real delivery companies direct you to their official website or app.

%% classification
Spam or not spam?
-- input
Reminder: your dentist appointment is on Thursday at 15:30. Reply C to confirm or call us to reschedule.
-- output
Not spam. It is a routine appointment reminder with a simple way to confirm, and it asks for no money or personal details.

%% classification
Classify this message as spam or not spam, and explain briefly.
-- input
Dear Customer, we detected unusual activity on your account. Verify your identity immediately by replying with your full card number and PIN.
-- output
Spam (phishing). Real banks never ask for your full card number or PIN by message, and the generic greeting and urgent tone are typical warning signs.

%% classification
Is the following statement a fact or an opinion?
-- input
Mount Everest is the highest mountain above sea level.
-- output
Fact. It can be checked by measurement: Everest's summit, at about 8,849 metres, is the highest point above sea level on Earth.

%% classification
Is this statement a fact or an opinion?
-- input
Summer is the best season of the year.
-- output
Opinion. It expresses a personal preference that people can reasonably disagree with.

%% classification
Identify whether each sentence is a question, a command or a statement.
-- input
1. Please close the door.
2. The library opens at nine.
3. Have you seen my keys?
-- output
1. Command
2. Statement
3. Question

%% classification
Classify the following animals as mammals, birds, reptiles or fish.
-- input
dolphin, penguin, salmon, gecko, bat, ostrich
-- output
- Mammals: dolphin, bat
- Birds: penguin, ostrich
- Reptiles: gecko
- Fish: salmon

%% classification
Classify each item as a fruit or a vegetable, in the everyday cooking sense.
-- input
carrot, mango, spinach, pear, broccoli, cherry
-- output
- Fruits: mango, pear, cherry
- Vegetables: carrot, spinach, broccoli

%% extraction
Extract all the people's names from this text.
-- input
At the conference, Dr. Amara Singh presented her research on soil health, and Professor Lukas Berg chaired the discussion that followed. Later, the journalist Helen Park interviewed both of them.
-- output
- Amara Singh
- Lukas Berg
- Helen Park

%% extraction
List all the dates mentioned in the following text.
-- input
The application window opens on 3 February 2025 and closes on 28 February 2025. Shortlisted candidates will be interviewed between 10 and 14 March, and results will be announced on 1 April.
-- output
- 3 February 2025 (applications open)
- 28 February 2025 (applications close)
- 10–14 March (interviews)
- 1 April (results announced)

%% extraction
Extract the email addresses from this text.
-- input
For billing questions write to billing@example.com. Technical issues should go to support@example.org, and press enquiries to media.team@example.net.
-- output
- billing@example.com
- support@example.org
- media.team@example.net

%% extraction
Extract the product names and prices from this receipt as a list.
-- input
Oat milk 1L ... 1.89
Sourdough loaf ... 3.50
Free-range eggs x6 ... 2.75
Dark chocolate 100g ... 1.20
TOTAL ... 9.34
-- output
- Oat milk 1L: 1.89
- Sourdough loaf: 3.50
- Free-range eggs x6: 2.75
- Dark chocolate 100g: 1.20
The total is 9.34.

%% extraction
Extract the city names from this paragraph.
-- input
Our tour starts in Lisbon, continues by train to Porto, then flies to Barcelona. After three days there, we take the ferry to Palma before finishing in Valencia.
-- output
Lisbon, Porto, Barcelona, Palma, Valencia

%% extraction
From the meeting notes below, list the action items with their owners and deadlines.
-- input
Notes, 12 May: Priya will update the budget spreadsheet by Wednesday. Tom to book the venue for the summer event before the end of the month. Everyone should review the draft policy; comments go to Lena by Friday.
-- output
- Priya: update the budget spreadsheet, by Wednesday.
- Tom: book the venue for the summer event, by the end of May.
- Everyone: review the draft policy and send comments to Lena, by Friday.

%% extraction
Extract all the numbers in this text and say what each one refers to.
-- input
The bridge is 1,280 metres long, took 4 years to build, and carries about 45,000 vehicles a day across 6 lanes.
-- output
- 1,280: the length of the bridge in metres
- 4: the number of years it took to build
- 45,000: the approximate number of vehicles that cross it each day
- 6: the number of lanes

%% extraction
Extract the ingredients and their quantities from this recipe.
-- input
For the pancakes, whisk 200 g of flour with 2 eggs and 300 ml of milk. Add a pinch of salt and 1 tablespoon of melted butter, then rest the batter for 10 minutes.
-- output
- Flour: 200 g
- Eggs: 2
- Milk: 300 ml
- Salt: a pinch
- Melted butter: 1 tablespoon

%% extraction
Extract the name, job title, company and phone number from this email signature.
-- input
Best regards,
Marta Kowalski
Senior Data Analyst | Harbourline Logistics
Tel: +44 20 7946 0321
-- output
- Name: Marta Kowalski
- Job title: Senior Data Analyst
- Company: Harbourline Logistics
- Phone: +44 20 7946 0321

%% extraction
Return the key details of this booking as JSON with the keys "passenger", "flight", "date", "from" and "to".
-- input
Booking confirmed for Mr. Kenji Watanabe on flight ZK 402, departing Sydney (SYD) on 18 October at 07:30 and arriving in Melbourne (MEL) at 09:05.
-- output
```json
{
  "passenger": "Kenji Watanabe",
  "flight": "ZK 402",
  "date": "18 October",
  "from": "Sydney (SYD)",
  "to": "Melbourne (MEL)"
}
```

%% extraction
Find all the hashtags in this social media post.
-- input
Great day volunteering at the beach clean-up! 42 bags of rubbish collected. #CleanBeaches #Volunteering #ZeroWaste
-- output
#CleanBeaches, #Volunteering, #ZeroWaste

%% extraction
Which organisations are mentioned in this text?
-- input
The World Health Organization and UNICEF launched a joint vaccination campaign, with logistics support from the Red Cross and funding from several national governments.
-- output
- World Health Organization
- UNICEF
- Red Cross

%% extraction
Extract the start time, end time and location of the event.
-- input
Join us for the community quiz night on Friday from 7 pm to 10 pm at the Old Mill Hall, 14 Riverside Lane. Teams of up to six.
-- output
- Start time: 7 pm on Friday
- End time: 10 pm
- Location: Old Mill Hall, 14 Riverside Lane

%% extraction
List every question the customer asks in this message.
-- input
Hi, I ordered a blue jacket last week. Has it been shipped yet? Also, can I change the size from M to L? And do you offer free returns if it doesn't fit?
-- output
1. Has the jacket been shipped yet?
2. Can the size be changed from M to L?
3. Are returns free if it doesn't fit?

%% extraction
Extract the years and the events that happened in them.
-- input
The company was founded in 1987 as a small repair shop. It opened its first factory in 1995, went public in 2004, and expanded into electric vehicles in 2019.
-- output
- 1987: the company was founded as a small repair shop
- 1995: it opened its first factory
- 2004: it went public
- 2019: it expanded into electric vehicles

%% extraction
What is the total amount due on this invoice, and when must it be paid?
-- input
Invoice #2231
Web design services: 1,200.00
Hosting (12 months): 180.00
Subtotal: 1,380.00
VAT (20%): 276.00
Total due: 1,656.00
Payment due by 15 July.
-- output
The total due is 1,656.00, which includes 276.00 of VAT, and it must be paid by 15 July.

%% editing
Correct the grammar and spelling in this sentence.
-- input
Their going to the libary tomorow to return there books.
-- output
They're going to the library tomorrow to return their books.

%% editing
Fix the grammatical errors in the following text.
-- input
Me and my brother has been living in this city since five years. We likes it very much.
-- output
My brother and I have been living in this city for five years. We like it very much.

%% editing
Correct any mistakes in this sentence.
-- input
Each of the students have submitted they're assignment on time.
-- output
Each of the students has submitted their assignment on time.

%% editing
Proofread this paragraph and correct the errors.
-- input
The resturant was quiet busy on saturday night. We had to wait for a hour, but the food were definately worth it.
-- output
The restaurant was quite busy on Saturday night. We had to wait for an hour, but the food was definitely worth it.

%% editing
Add the missing punctuation and capital letters.
-- input
where are you going asked mum its nearly dinner time
-- output
"Where are you going?" asked Mum. "It's nearly dinner time."

%% editing
Correct the verb tenses in this paragraph.
-- input
Yesterday I go to the market and buy some apples. Then I see my old teacher and we talk for an hour.
-- output
Yesterday I went to the market and bought some apples. Then I saw my old teacher and we talked for an hour.

%% editing
Correct the errors in this sentence and explain each fix.
-- input
Its important to check you're work before you submits it.
-- output
Corrected: "It's important to check your work before you submit it."
- "Its" → "It's": the sentence needs the contraction of "it is".
- "you're" → "your": the possessive is needed, not "you are".
- "submits" → "submit": the verb must agree with "you".

%% editing
Fix this run-on sentence.
-- input
I wanted to go to the beach it started raining so we watched a film instead.
-- output
I wanted to go to the beach, but it started raining, so we watched a film instead.

%% editing
Correct the subject-verb agreement in these sentences.
-- input
The list of items are on the table. Neither the manager nor the employees was informed.
-- output
The list of items is on the table. Neither the manager nor the employees were informed.

%% editing
Rewrite this message to make it more formal.
-- input
Hey, can't make the meeting tomorrow, something came up. Can we do Thursday instead?
-- output
Hello, unfortunately I will be unable to attend tomorrow's meeting because of an unexpected commitment. Would it be possible to reschedule for Thursday?

%% editing
Make this email more professional.
-- input
hi, the report you sent is wrong, the numbers don't add up. fix it asap.
-- output
Hello, thank you for sending the report. I noticed that some of the figures do not add up. Could you please review them and send a corrected version as soon as possible? Thank you.

%% editing
Rewrite this sentence in a formal register.
-- input
The new guy's kinda slow but he's really trying.
-- output
Our new colleague is still getting up to speed, but he is making a genuine effort.

%% editing
Make this complaint more polite while keeping it firm.
-- input
Your company charged me twice and nobody's fixed it. I want my money back now.
-- output
I was charged twice for the same order, and the issue has not yet been resolved. Please refund the duplicate payment as soon as possible and confirm when this has been done.

%% editing
Rewrite this text in formal language suitable for a report.
-- input
Loads of customers said the app is super confusing and they gave up before paying.
-- output
A large number of customers reported that the app was difficult to use, and many abandoned their purchase before completing payment.

%% editing
Make this message sound more casual and friendly.
-- input
Dear team, I would like to inform you that the office will be closed on Friday. Kindly plan your work accordingly.
-- output
Hi everyone! Just a heads-up: the office is closed on Friday, so plan your work around it.

%% editing
Rewrite this in a relaxed, informal tone.
-- input
I regret to inform you that I will be unable to attend your celebration due to a prior engagement.
-- output
So sorry, but I can't make it to your party because I've already got plans. Hope it's a great one!

%% editing
Rewrite this sentence informally, as if texting a friend.
-- input
Would you be available to meet for coffee at approximately three o'clock this afternoon?
-- output
Free for coffee around 3 today?

%% editing
Rewrite this formal announcement in a friendly way for a school newsletter.
-- input
Parents are hereby notified that the annual sports day shall take place on 14 June. Attendance is strongly encouraged.
-- output
Mark your calendars! Our annual sports day is on 14 June, and we'd love to see as many parents as possible there cheering everyone on.

%% editing
Shorten this sentence without changing its meaning.
-- input
In my personal opinion, I think that we should probably consider the possibility of starting the project earlier.
-- output
I think we should consider starting the project earlier.

%% editing
Correct the capitalisation in this text.
-- input
last summer we visited paris and rome. in paris, we saw the eiffel tower on a monday in july.
-- output
Last summer we visited Paris and Rome. In Paris, we saw the Eiffel Tower on a Monday in July.
'''

HANDWRITTEN_REASONING_CODE = r'''
%% reasoning
If today is Wednesday, what day of the week will it be in 10 days?
-- output
After 7 days it is Wednesday again. That leaves 10 − 7 = 3 more days: Thursday, Friday, Saturday. In 10 days it will be Saturday.

%% reasoning
A train leaves at 14:45 and the journey takes 2 hours and 50 minutes. What time does it arrive?
-- output
Adding 2 hours to 14:45 gives 16:45. Adding 15 of the 50 minutes brings it to 17:00, and the remaining 35 minutes give 17:35. The train arrives at 17:35.

%% reasoning
What is the probability of rolling a total of 7 with two fair six-sided dice?
-- output
There are 6 × 6 = 36 equally likely outcomes. The pairs that add up to 7 are (1,6), (2,5), (3,4), (4,3), (5,2) and (6,1): 6 outcomes. The probability is 6/36 = 1/6, or about 16.7%. Seven is the most likely total with two dice.

%% reasoning
What comes next in the sequence 2, 6, 12, 20, 30, ...? Explain.
-- output
The differences between the terms are 4, 6, 8 and 10, growing by 2 each time. The next difference is 12, so the next number is 30 + 12 = 42. Another way to see it: the terms are 1×2, 2×3, 3×4, 4×5 and 5×6, so the next is 6×7 = 42.

%% reasoning
All the cats in the shelter have been vaccinated. Milo is a cat in the shelter. What can we conclude?
-- output
We can conclude that Milo has been vaccinated. Every cat in the shelter has been vaccinated, and Milo is one of those cats, so the statement applies to him.

%% reasoning
Some programmers like tea. Sam is a programmer. Does Sam like tea?
-- output
We can't tell. "Some programmers like tea" means at least one programmer does, not all of them. Sam could be one who likes tea or one who doesn't, so the information is not enough to decide.

%% reasoning
Anna is taller than Ben, and Ben is taller than Carla. Who is the shortest?
-- output
Carla is the shortest. Anna is taller than Ben and Ben is taller than Carla, so from tallest to shortest the order is Anna, Ben, Carla.

%% reasoning
A shirt costs $40 after a 20% discount. What was the original price?
-- output
After a 20% discount you pay 80% of the original price, so 0.8 × original = $40 and original = $40 ÷ 0.8 = $50. The original price was $50. (Adding 20% to $40 would give $48, which is a common mistake.)

%% reasoning
If 3 painters can paint 3 fences in 3 hours, how long would 6 painters take to paint 6 fences?
-- output
3 painters paint 3 fences in 3 hours, so each painter paints one fence in 3 hours. With 6 painters working at the same time, each paints one of the 6 fences, which still takes 3 hours. The answer is 3 hours.

%% reasoning
A farmer has chickens and cows. Together they have 20 heads and 56 legs. How many of each are there?
-- output
If all 20 animals were chickens, there would be 20 × 2 = 40 legs. There are 56 − 40 = 16 extra legs, and each cow adds 2 extra legs, so there are 16 ÷ 2 = 8 cows. That leaves 20 − 8 = 12 chickens. Check: 12 × 2 + 8 × 4 = 24 + 32 = 56 legs.

%% reasoning
A recipe needs 3 eggs for every 250 g of flour. How many eggs are needed for 1 kg of flour?
-- output
1 kg is 1,000 g, which is 1,000 ÷ 250 = 4 times the flour in the recipe. So you need 4 × 3 = 12 eggs.

%% reasoning
Which is the better deal: a 500 g box of cereal for $3.20 or a 750 g box for $4.50?
-- output
Compare the price per 100 g. The 500 g box costs $3.20 ÷ 5 = $0.64 per 100 g. The 750 g box costs $4.50 ÷ 7.5 = $0.60 per 100 g. The 750 g box is the better deal, as long as you will finish it before it goes stale.

%% reasoning
Based on the timetable, what is the latest bus I can take to reach the station by 9:00?
-- input
Bus departures from Elm Road (journey time to the station: 25 minutes): 7:50, 8:10, 8:30, 8:50
-- output
To arrive by 9:00 you must leave by 9:00 − 25 minutes = 8:35. The 8:30 bus arrives at 8:55, while the 8:50 bus would arrive at 9:15, which is too late. The latest bus you can take is the 8:30.

%% reasoning
Using the information given, who owns the dog?
-- input
Three neighbours, Ava, Raj and Lucia, each own exactly one pet: a cat, a dog or a parrot. Ava's pet has feathers. Raj is allergic to cats.
-- output
Ava's pet has feathers, so Ava owns the parrot. That leaves the cat and the dog for Raj and Lucia. Raj is allergic to cats, so Raj owns the dog and Lucia owns the cat. The dog belongs to Raj.

%% reasoning
A car uses 6 litres of fuel per 100 km. How much fuel does it need for a 350 km trip?
-- output
350 km is 3.5 times 100 km, so the car needs 3.5 × 6 = 21 litres of fuel.

%% reasoning
If it takes 10 minutes to boil one egg, how long does it take to boil four eggs in the same pot?
-- output
Still about 10 minutes. The eggs cook at the same time in the same water, so adding more eggs does not multiply the cooking time, as long as the pot is big enough and the water comes back to the boil.

%% reasoning
Is 91 a prime number? Explain.
-- output
No. 91 = 7 × 13, so it has divisors other than 1 and itself. It is easy to mistake for a prime because it is odd and not divisible by 3 or 5, but testing 7 reveals the factors.

%% code
Write a Python function that checks whether a string is a palindrome, ignoring case, spaces and punctuation.
-- output
```python
def is_palindrome(text: str) -> bool:
    cleaned = [ch.lower() for ch in text if ch.isalnum()]
    return cleaned == cleaned[::-1]
```

For example, `is_palindrome("Never odd or even")` returns `True`, and `is_palindrome("Python")` returns `False`.

%% code
Write a Python function that returns the factorial of a non-negative integer without using recursion.
-- output
```python
def factorial(n: int) -> int:
    if n < 0:
        raise ValueError("n must be non-negative")
    result = 1
    for i in range(2, n + 1):
        result *= i
    return result
```

`factorial(5)` returns 120 and `factorial(0)` returns 1. The standard library also provides `math.factorial`.

%% code
Write a Python function that removes duplicates from a list while keeping the original order.
-- output
```python
def unique_in_order(items):
    seen = set()
    result = []
    for item in items:
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result
```

`unique_in_order([3, 1, 3, 2, 1])` returns `[3, 1, 2]`. For hashable items, `list(dict.fromkeys(items))` does the same in one line, because dictionaries keep insertion order.

%% code
Write a Python function that counts the vowels in a string.
-- output
```python
def count_vowels(text: str) -> int:
    return sum(1 for ch in text.lower() if ch in "aeiou")
```

`count_vowels("Hello World")` returns 3 (e, o and o).

%% code
Write a Python function that returns the most common words in a text.
-- output
```python
import re
from collections import Counter

def top_words(text: str, n: int = 3):
    words = re.findall(r"[a-z']+", text.lower())
    return Counter(words).most_common(n)
```

It lower-cases the text, extracts the words and returns `(word, count)` pairs, most frequent first. For example, `top_words("the cat and the hat and the bat")` returns `[('the', 3), ('and', 2), ('cat', 1)]`.

%% code
Write a Python function that returns the first n Fibonacci numbers as a list.
-- output
```python
def fibonacci(n: int) -> list[int]:
    numbers = []
    a, b = 0, 1
    for _ in range(n):
        numbers.append(a)
        a, b = b, a + b
    return numbers
```

`fibonacci(8)` returns `[0, 1, 1, 2, 3, 5, 8, 13]`.

%% code
Explain what this Python code does.
-- input
squares = {n: n * n for n in range(1, 6) if n % 2 == 1}
print(squares)
-- output
It builds a dictionary with a dictionary comprehension. It loops over the numbers 1 to 5 (`range(1, 6)` stops before 6), keeps only the odd ones (`n % 2 == 1`), and maps each one to its square. It then prints `{1: 1, 3: 9, 5: 25}`.

%% code
What does this code print, and why?
-- input
def add_item(item, bucket=[]):
    bucket.append(item)
    return bucket

print(add_item("a"))
print(add_item("b"))
-- output
It prints `['a']` and then `['a', 'b']`. The default list is created only once, when the function is defined, so both calls share and modify the same list. The usual fix is to use `None` as the default:

```python
def add_item(item, bucket=None):
    if bucket is None:
        bucket = []
    bucket.append(item)
    return bucket
```

%% code
Find and fix the bug in this function, which should return the average of a list of numbers.
-- input
def average(numbers):
    total = 0
    for n in numbers:
        total += n
    return total / len(numbers) - 1
-- output
The last line subtracts 1 from the result; the `- 1` should not be there. The function also crashes with `ZeroDivisionError` on an empty list. A fixed version:

```python
def average(numbers):
    if not numbers:
        raise ValueError("cannot average an empty list")
    return sum(numbers) / len(numbers)
```

%% code
Write an SQL query that returns the names and salaries of the five highest-paid employees.
-- input
Table: employees(id, name, department, salary)
-- output
```sql
SELECT name, salary
FROM employees
ORDER BY salary DESC
LIMIT 5;
```

`LIMIT` works in PostgreSQL, MySQL and SQLite. In SQL Server, write `SELECT TOP 5 name, salary FROM employees ORDER BY salary DESC;` instead.

%% code
Write an SQL query that shows the number of employees and the average salary in each department, highest average first.
-- input
Table: employees(id, name, department, salary)
-- output
```sql
SELECT department,
       COUNT(*) AS num_employees,
       AVG(salary) AS avg_salary
FROM employees
GROUP BY department
ORDER BY avg_salary DESC;
```

%% code
Write an SQL query that lists each customer's name with the total amount they have spent, including customers with no orders.
-- input
Tables: customers(id, name), orders(id, customer_id, amount)
-- output
```sql
SELECT c.name,
       COALESCE(SUM(o.amount), 0) AS total_spent
FROM customers AS c
LEFT JOIN orders AS o ON o.customer_id = c.id
GROUP BY c.id, c.name
ORDER BY total_spent DESC;
```

The `LEFT JOIN` keeps customers who have no orders, and `COALESCE` turns their empty sum (NULL) into 0.

%% code
Explain what this SQL query does.
-- input
SELECT city, COUNT(*) AS n
FROM users
WHERE signup_date >= '2024-01-01'
GROUP BY city
HAVING COUNT(*) > 100;
-- output
It counts the users who signed up on or after 1 January 2024, grouped by city, and returns only the cities with more than 100 such users. Each result row holds a city and its count in a column named `n`. `WHERE` filters individual rows before grouping, while `HAVING` filters the groups after counting.

%% code
Write Python code that reads a text file and prints how many lines it has.
-- output
```python
def count_lines(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f)

print(count_lines("notes.txt"))
```

Iterating over the file object reads one line at a time, so this also works for very large files, and the `with` block closes the file automatically.

%% code
How do I merge two dictionaries in Python?
-- output
In Python 3.9 and later, use the `|` operator:

```python
defaults = {"color": "blue", "size": "M"}
choices = {"size": "L"}
merged = defaults | choices  # {'color': 'blue', 'size': 'L'}
```

When both dictionaries contain the same key, the value from the right-hand one wins. In older versions, use `{**defaults, **choices}`. To update a dictionary in place, use `defaults.update(choices)`.

%% code
What is the time complexity of checking whether an item is in a Python list versus a set?
-- output
`x in my_list` is O(n): Python compares x with the elements one by one until it finds a match, so the time grows with the length of the list. `x in my_set` is O(1) on average, because a set uses a hash table to jump straight to where the item would be stored. If you need many membership checks on a large collection, converting it to a set first is usually much faster.

%% code
Rewrite this loop as a list comprehension.
-- input
result = []
for word in words:
    if len(word) > 3:
        result.append(word.upper())
-- output
```python
result = [word.upper() for word in words if len(word) > 3]
```

%% code
Explain what this shell command does.
-- input
find . -name "*.log" -mtime +7 -delete
-- output
It searches the current directory (`.`) and all its subdirectories for files whose names end in `.log` and that were last modified more than 7 days ago (`-mtime +7`), and deletes them (`-delete`). Deletion is immediate and permanent, so it is wise to run the command without `-delete` first to see which files match.

%% code
Write a Python function that converts a temperature from Celsius to Fahrenheit.
-- output
```python
def celsius_to_fahrenheit(celsius: float) -> float:
    return celsius * 9 / 5 + 32
```

For example, `celsius_to_fahrenheit(100)` returns 212.0 and `celsius_to_fahrenheit(-40)` returns -40.0.

%% code
Write a Python function that flattens a list of lists into a single list.
-- output
```python
def flatten(list_of_lists):
    return [item for sublist in list_of_lists for item in sublist]
```

`flatten([[1, 2], [3], [4, 5]])` returns `[1, 2, 3, 4, 5]`. This flattens one level only; deeper nesting needs a recursive version.

%% code
What does this regular expression match?
-- input
^\d{3}-\d{4}$
-- output
It matches a string made of exactly three digits, a hyphen and four digits, such as `555-1234`. `\d{3}` means exactly three digits, and the `^` and `$` anchors tie the pattern to the start and end of the string, so nothing may come before or after it.

%% code
What does this Python error mean, and how do I fix it?
-- input
TypeError: can only concatenate str (not "int") to str
-- output
You tried to join a string and an integer with `+`, for example `"Age: " + 30`. Python does not turn the number into text automatically. Convert it explicitly, as in `"Age: " + str(age)`, or use an f-string, which is usually clearer: `f"Age: {age}"`.

%% code
How do I undo my last Git commit but keep the changes in my files?
-- output
Run:

```
git reset --soft HEAD~1
```

This moves the branch back by one commit and leaves the changes staged, so you can edit them and commit again. Use `git reset HEAD~1` if you want the changes kept but unstaged. If the commit has already been pushed and others may have pulled it, use `git revert HEAD` instead, which adds a new commit that undoes it without rewriting history.

%% code
Write a Python function for binary search on a sorted list. It should return the index of the target, or -1 if it is not found.
-- output
```python
def binary_search(items, target):
    low, high = 0, len(items) - 1
    while low <= high:
        mid = (low + high) // 2
        if items[mid] == target:
            return mid
        if items[mid] < target:
            low = mid + 1
        else:
            high = mid - 1
    return -1
```

Each step halves the search range, so it runs in O(log n) time. For example, `binary_search([2, 5, 8, 12, 16], 12)` returns 3.

%% code
How do I read a JSON file into a Python dictionary?
-- output
Use the built-in `json` module:

```python
import json

with open("config.json", encoding="utf-8") as f:
    config = json.load(f)

print(config["name"])
```

`json.load` reads from a file object, while `json.loads` parses a string. If the file's top level is a JSON array rather than an object, you get a Python list instead of a dictionary.
'''

HANDWRITTEN_BLOCKS = (
    HANDWRITTEN_QA,
    HANDWRITTEN_KNOWLEDGE,
    HANDWRITTEN_TEXT,
    HANDWRITTEN_REASONING_CODE,
)


def parse_handwritten(text: str) -> list[tuple[str, dict[str, str]]]:
    """Parse one ``HANDWRITTEN_*`` block into ``(task, record)`` pairs."""
    records = []
    for chunk in re.split(r"^%% ", text, flags=re.M)[1:]:
        header, _, body = chunk.partition("\n")
        task = header.strip()
        if task not in HANDWRITTEN_TASKS:
            raise ValueError(f"unknown task type {task!r}")
        sections: dict[str, list[str]] = {"instruction": []}
        current = "instruction"
        for line in body.split("\n"):
            if line in ("-- input", "-- output"):
                current = line[3:]
                if current in sections:
                    raise ValueError(f"section {current!r} repeated in record {header!r}")
                sections[current] = []
            else:
                sections[current].append(line)
        if "output" not in sections or list(sections)[-1] != "output":
            raise ValueError(f"record without a final output section: {body[:60]!r}")
        record = {
            key: "\n".join(sections.get(key, [])).strip()
            for key in ("instruction", "input", "output")
        }
        if not record["instruction"] or not record["output"]:
            raise ValueError(f"empty instruction or output: {body[:60]!r}")
        if "input" in sections and not record["input"]:
            raise ValueError(f"empty input section: {body[:60]!r}")
        records.append((task, record))
    return records


# ---------------------------------------------------------------------------------------------
# Formatting helpers for generated records
# ---------------------------------------------------------------------------------------------


def fmt_num(value, places: int = 2) -> str:
    """Decimal text of ``value`` rounded half up to ``places``, trailing zeros removed."""
    return _fmt(value, places)[0]


def _fmt(value, places: int = 2) -> tuple[str, bool]:
    x = Fraction(value)
    scaled = abs(x) * 10**places
    rounded = int(scaled + Fraction(1, 2))  # half up; scaled is non-negative
    whole, frac = divmod(rounded, 10**places)
    frac_text = f"{frac:0{places}d}".rstrip("0")
    text = str(whole) + ("." + frac_text if frac_text else "")
    if x < 0 and rounded:
        text = "-" + text
    return text, scaled.denominator == 1


def money(cents: int, always_cents: bool = False) -> str:
    if cents % 100 == 0 and not always_cents:
        return f"${cents // 100}"
    return f"${cents // 100}.{cents % 100:02d}"


def hm(hours: int, minutes: int) -> str:
    hour_word = "hour" if hours == 1 else "hours"
    return f"{hours} {hour_word} and {minutes} minutes"


def clock(total_minutes: int) -> str:
    return f"{total_minutes // 60:02d}:{total_minutes % 60:02d}"


NAMES = [
    "Maya", "Leo", "Aisha", "Tom", "Nina", "Omar", "Grace", "Ravi", "Elena", "Sam",
    "Yuki", "Ben", "Zara", "Felix", "Ines", "Kofi", "Lena", "Marco", "Priya", "Jonas",
]

# ---------------------------------------------------------------------------------------------
# Generated: arithmetic word problems (10 templates x 4 instances)
# ---------------------------------------------------------------------------------------------

SHOP_ITEMS = [
    ("notebooks", 150, 400, 25),
    ("pens", 80, 250, 10),
    ("muffins", 200, 350, 25),
    ("bus tickets", 180, 320, 20),
    ("apples", 40, 90, 5),
    ("packets of seeds", 120, 300, 20),
]


def problem_shopping(rng: random.Random, variant: int) -> tuple[str, str]:
    name = rng.choice(NAMES)
    item, low, high, step = rng.choice(SHOP_ITEMS)
    count = rng.randint(2, 6)
    price = rng.randrange(low, high + 1, step)
    total = count * price
    note = next(n for n in (500, 1000, 2000, 5000) if n > total)
    change = note - total
    p, t, n, c = (money(x, True) for x in (price, total, note, change))
    if variant == 0:
        q = f"{name} buys {count} {item} at {p} each and pays with a {money(note)} note. How much change does {name} get?"
    else:
        q = f"{count} {item} cost {p} each. If {name} pays with a {money(note)} note, how much change should {name} receive?"
    a = f"The {item} cost {count} × {p} = {t}. The change is {n} − {t} = {c}. {name} gets {c} in change."
    return q, a


MOVERS = [
    ("cyclist", "rides", 12, 24, 1),
    ("runner", "runs", 8, 14, 1),
    ("train", "travels", 60, 160, 10),
    ("delivery van", "drives", 40, 90, 5),
    ("ferry", "sails", 20, 40, 2),
]
TRIP_HOURS = [Fraction(3, 2), Fraction(2), Fraction(5, 2), Fraction(3), Fraction(4)]


def problem_speed(rng: random.Random, variant: int) -> tuple[str, str]:
    noun, verb, low, high, step = rng.choice(MOVERS)
    speed = rng.randrange(low, high + 1, step)
    hours = rng.choice(TRIP_HOURS)
    distance = speed * hours
    v, h, d = fmt_num(speed), fmt_num(hours), fmt_num(distance)
    mode = rng.randrange(3)
    if mode == 0:
        q = f"A {noun} {verb} at a steady {v} km/h for {h} hours. How far does the {noun} travel?"
        a = f"Distance = speed × time = {v} km/h × {h} h = {d} km. The {noun} travels {d} km."
    elif mode == 1:
        q = f"A {noun} has to cover {d} km at an average speed of {v} km/h. How long will the trip take?"
        extra = ""
        if hours.denominator != 1:
            extra = f", which is {hm(int(hours), int((hours - int(hours)) * 60))}"
        a = f"Time = distance ÷ speed = {d} km ÷ {v} km/h = {h} hours{extra}."
    else:
        q = f"A {noun} covers {d} km in {h} hours. What is the {noun}'s average speed?"
        a = f"Average speed = distance ÷ time = {d} km ÷ {h} h = {v} km/h."
    if variant == 1:
        q = q.replace("A ", "Suppose a ", 1)
    return q, a


SHARE_THINGS = ["stickers", "marbles", "sweets", "stamps", "trading cards", "crayons"]


def problem_sharing(rng: random.Random, variant: int) -> tuple[str, str]:
    name = rng.choice(NAMES)
    things = rng.choice(SHARE_THINGS)
    total = rng.randint(20, 95)
    groups = rng.randint(3, 9)
    each, left = divmod(total, groups)
    if variant == 0:
        q = f"{name} has {total} {things} and shares them equally among {groups} friends. How many does each friend get, and how many are left over?"
        who = "friend"
    else:
        q = f"{total} {things} are divided equally between {groups} children. How many does each child get, and how many are left over?"
        who = "child"
    if left == 0:
        a = f"{total} ÷ {groups} = {each} exactly, because {groups} × {each} = {total}. Each {who} gets {each} {things}, and none are left over."
    else:
        rest = "1 is left over" if left == 1 else f"{left} are left over"
        a = (
            f"{total} ÷ {groups} = {each} remainder {left}, because {groups} × {each} = {groups * each} "
            f"and {total} − {groups * each} = {left}. Each {who} gets {each} {things}, and {rest}."
        )
    return q, a


SALE_ITEMS = ["jacket", "pair of trainers", "desk lamp", "backpack", "coffee maker", "bookshelf"]


def problem_discount(rng: random.Random, variant: int) -> tuple[str, str]:
    item = rng.choice(SALE_ITEMS)
    price = rng.randrange(30, 201, 5) * 100
    percent = rng.choice([10, 15, 20, 25, 30, 40, 50])
    discount = price * percent // 100
    sale = price - discount
    cents = discount % 100 != 0
    p, d, s = (money(x, cents) for x in (price, discount, sale))
    if variant == 0:
        q = f"A {item} normally costs {money(price)}. It is on sale at {percent}% off. What is the sale price?"
    else:
        q = f"How much do you pay for a {item} priced at {money(price)} if you get a {percent}% discount?"
    a = (
        f"The discount is {percent}% of {p}: {fmt_num(Fraction(percent, 100))} × {p} = {d}. "
        f"The price after the discount is {p} − {d} = {s}."
    )
    return q, a


def problem_rectangle(rng: random.Random, variant: int) -> tuple[str, str]:
    if variant == 0:
        length = rng.randint(6, 25)
        width = rng.randint(3, length - 1)
        q = f"A rectangular garden is {length} m long and {width} m wide. How much fencing is needed to go all the way around it, and what is its area?"
        perimeter = 2 * (length + width)
        a = (
            f"Perimeter = 2 × ({length} + {width}) = 2 × {length + width} = {perimeter} m, so {perimeter} metres "
            f"of fencing are needed. Area = {length} × {width} = {length * width} square metres."
        )
    else:
        length = rng.randint(3, 9)
        width = rng.randint(2, length)
        q = f"A room measures {length} m by {width} m. How many square metres of carpet are needed to cover the floor?"
        a = f"Area = length × width = {length} × {width} = {length * width} square metres, so {length * width} m² of carpet are needed."
    return q, a


def problem_average(rng: random.Random, variant: int) -> tuple[str, str]:
    if variant == 0:
        name = rng.choice(NAMES)
        values = [rng.randint(55, 100) for _ in range(4)]
        listed = ", ".join(str(v) for v in values[:-1]) + f" and {values[-1]}"
        q = f"{name} scored {listed} on four tests. What is the average score?"
        unit = ""
    else:
        values = [rng.randint(10, 30) for _ in range(5)]
        listed = ", ".join(str(v) for v in values[:-1]) + f" and {values[-1]}"
        q = f"The daily high temperatures over five days were {listed} °C. What was the average daily high?"
        unit = " °C"
    total = sum(values)
    mean = Fraction(total, len(values))
    a = (
        f"Sum = {' + '.join(str(v) for v in values)} = {total}. "
        f"Average = {total} ÷ {len(values)} = {fmt_num(mean)}{unit}."
    )
    return q, a


def problem_clock(rng: random.Random, variant: int) -> tuple[str, str]:
    if variant == 0:
        start = rng.randint(13, 20) * 60 + rng.randrange(0, 60, 5)
        length = rng.choice([m for m in range(85, 176, 5) if m % 60])
        hours, minutes = divmod(length, 60)
        q = f"A film starts at {clock(start)} and runs for {length} minutes. What time does it end?"
        lead = f"{length} minutes is {hm(hours, minutes)}. "
        subject = "The film ends"
    else:
        start = rng.randint(6, 19) * 60 + rng.randrange(0, 60, 5)
        hours, minutes = rng.randint(1, 3), rng.randrange(5, 60, 5)
        q = f"A train leaves at {clock(start)} and the journey takes {hm(hours, minutes)}. When does it arrive?"
        lead = ""
        subject = "The train arrives"
    middle = start + hours * 60
    end = middle + minutes
    a = (
        f"{lead}{clock(start)} plus {hours} {'hour' if hours == 1 else 'hours'} is {clock(middle)}, "
        f"and {clock(middle)} plus {minutes} minutes is {clock(end)}. {subject} at {clock(end)}."
    )
    return q, a


def problem_ages(rng: random.Random, variant: int) -> tuple[str, str]:
    first, second = rng.sample(NAMES, 2)
    if variant == 0:
        younger = rng.randint(6, 40)
        gap = rng.randint(2, 12)
        total = 2 * younger + gap
        q = f"{first} is {gap} years older than {second}. Their ages add up to {total}. How old is each of them?"
        a = (
            f"Let {second}'s age be x. Then {first} is x + {gap}, so x + (x + {gap}) = {total}. "
            f"That gives 2x = {total} − {gap} = {total - gap}, so x = {younger}. "
            f"{second} is {younger} years old and {first} is {younger + gap}."
        )
    else:
        child = rng.randint(8, 16)
        factor = 4 if child <= 12 and rng.random() < 0.5 else 3
        gap = child * (factor - 1)
        q = f"{first}'s father is {factor} times as old as {first}, and he is {gap} years older. How old are they?"
        a = (
            f"Let {first}'s age be x. The father is {factor}x, and {factor}x − x = {gap}, so {factor - 1}x = {gap} "
            f"and x = {gap} ÷ {factor - 1} = {child}. {first} is {child} years old and the father is {factor * child}."
        )
    return q, a


RECIPE_SOLIDS = [("flour", 40, 100), ("rice", 60, 100), ("pasta", 80, 120), ("sugar", 20, 50), ("butter", 15, 40)]


def problem_recipe(rng: random.Random, variant: int) -> tuple[str, str]:
    serves = rng.choice([2, 4, 6, 8])
    people = rng.choice([n for n in range(1, 13) if n != serves])
    if variant == 0:
        ingredient, low, high = rng.choice(RECIPE_SOLIDS)
        per_person = rng.randrange(low, high + 1, 5)
        unit = "g"
        q = f"A recipe for {serves} people uses {per_person * serves} g of {ingredient}. How much {ingredient} is needed for {people} people?"
    else:
        per_person = rng.randrange(150, 301, 25)
        unit = "ml"
        q = f"A soup for {serves} people needs {per_person * serves} ml of stock. How much stock is needed to make it for {people} people?"
    needed = per_person * people
    a = (
        f"Per person: {per_person * serves} {unit} ÷ {serves} = {per_person} {unit}. "
        f"For {people} {'person' if people == 1 else 'people'}: {per_person} {unit} × {people} = {needed} {unit}."
    )
    if needed >= 1000:
        big = "kg" if unit == "g" else "litres"
        a += f" That is {fmt_num(Fraction(needed, 1000), 3)} {big}."
    return q, a


SAVE_ITEMS = ["bicycle", "guitar", "tablet", "pair of headphones", "skateboard", "camera"]


def problem_saving(rng: random.Random, variant: int) -> tuple[str, str]:
    name = rng.choice(NAMES)
    item = rng.choice(SAVE_ITEMS)
    weekly = rng.randint(5, 25)
    price = rng.randrange(max(60, 3 * weekly), 401, 5)
    weeks, rest = divmod(price, weekly)
    if variant == 0:
        q = f"{name} saves ${weekly} every week to buy a {item} that costs ${price}. How many weeks will it take to save enough?"
        who = name
    else:
        q = f"A {item} costs ${price}. If you put aside ${weekly} a week, after how many weeks can you buy it?"
        who = "you"
    if rest == 0:
        a = f"${price} ÷ ${weekly} = {weeks} exactly, so it takes {weeks} weeks."
    else:
        has = "has" if who != "you" else "have"
        a = (
            f"${price} ÷ ${weekly} = {weeks} remainder {rest}. After {weeks} weeks {who} {has} "
            f"{weeks} × ${weekly} = ${weeks * weekly}, which is still ${price - weeks * weekly} short, "
            f"so it takes {weeks + 1} weeks."
        )
    return q, a


PROBLEM_TEMPLATES = (
    problem_shopping,
    problem_speed,
    problem_sharing,
    problem_discount,
    problem_rectangle,
    problem_average,
    problem_clock,
    problem_ages,
    problem_recipe,
    problem_saving,
)


def generate_word_problems(rng: random.Random, per_template: int = 4) -> list[tuple[str, dict[str, str]]]:
    out, seen = [], set()
    for template in PROBLEM_TEMPLATES:
        made = 0
        while made < per_template:
            q, a = template(rng, made % 2)
            if q in seen:
                continue
            seen.add(q)
            out.append(("arithmetic_word_problem", {"instruction": q, "input": "", "output": a}))
            made += 1
    return out


# ---------------------------------------------------------------------------------------------
# Generated: unit conversions (16 kinds x 2 values)
# ---------------------------------------------------------------------------------------------

# (from plural, from symbol, to plural, to symbol, operation, factor, rule, candidate values)
LINEAR_CONVERSIONS = [
    ("kilometres", "km", "miles", "miles", "div", "1.609344", "1 mile = 1.609344 km", ["5", "10", "42", "100", "160"]),
    ("miles", "miles", "kilometres", "km", "mul", "1.609344", "1 mile = 1.609344 km", ["3", "26", "60", "150"]),
    ("kilograms", "kg", "pounds", "lb", "div", "0.45359237", "1 pound = 0.45359237 kg", ["2", "5", "68", "80"]),
    ("pounds", "lb", "kilograms", "kg", "mul", "0.45359237", "1 pound = 0.45359237 kg", ["10", "12", "35", "150"]),
    ("centimetres", "cm", "inches", "in", "div", "2.54", "1 inch = 2.54 cm", ["30", "75", "180", "12.7"]),
    ("inches", "in", "centimetres", "cm", "mul", "2.54", "1 inch = 2.54 cm", ["6", "12", "27", "55"]),
    ("feet", "ft", "metres", "m", "mul", "0.3048", "1 foot = 0.3048 m", ["6", "10", "328", "1000"]),
    ("metres", "m", "feet", "ft", "div", "0.3048", "1 foot = 0.3048 m", ["2", "50", "100", "400"]),
    ("litres", "L", "US gallons", "US gal", "div", "3.785411784", "1 US gallon = 3.785411784 litres", ["4", "10", "50", "200"]),
    ("US gallons", "US gal", "litres", "L", "mul", "3.785411784", "1 US gallon = 3.785411784 litres", ["2", "5", "12", "20"]),
    ("grams", "g", "ounces", "oz", "div", "28.349523125", "1 ounce = 28.349523125 g", ["50", "100", "250", "500"]),
    ("kilometres per hour", "km/h", "metres per second", "m/s", "div", "3.6", "1 m/s = 3.6 km/h", ["36", "50", "90", "100"]),
    ("square metres", "m²", "square feet", "sq ft", "div", "0.09290304", "1 square foot = 0.09290304 m²", ["12", "20", "45", "100"]),
]


def _conversion_question(form: int, value: str, src: str, src_sym: str, dst: str) -> tuple[str, str]:
    if form == 0:
        return f"Convert {value} {src} to {dst}.", ""
    if form == 1:
        return f"How many {dst} are there in {value} {src}?", ""
    if form == 2:
        return f"What is {value} {src} in {dst}?", ""
    return f"Convert this measurement to {dst}.", f"{value} {src_sym}"


def generate_conversions(rng: random.Random, per_kind: int = 2) -> list[tuple[str, dict[str, str]]]:
    out = []
    form = 0

    def add(question: tuple[str, str], answer: str) -> None:
        out.append(("unit_conversion", {"instruction": question[0], "input": question[1], "output": answer}))

    for src, src_sym, dst, dst_sym, op, factor_text, rule, values in LINEAR_CONVERSIONS:
        factor = Fraction(factor_text)
        for value_text in rng.sample(values, per_kind):
            value = Fraction(value_text)
            result = value * factor if op == "mul" else value / factor
            text, exact = _fmt(result)
            sign = "=" if exact else "≈"
            if op == "mul":
                how = f"Since {rule}, multiply by {factor_text}: {value_text} {src_sym} × {factor_text} {sign} {text} {dst_sym}."
            else:
                how = f"Since {rule}, divide by {factor_text}: {value_text} {src_sym} ÷ {factor_text} {sign} {text} {dst_sym}."
            add(_conversion_question(form % 4, value_text, src, src_sym, dst), how)
            form += 1

    for value_text in rng.sample(["25", "37", "100", "-10", "180"], per_kind):
        c = Fraction(value_text)
        step = c * Fraction(9, 5)
        f_text = fmt_num(step + 32)
        answer = (
            f"Multiply by 9/5 and add 32: {value_text} × 9/5 + 32 = {fmt_num(step)} + 32 = {f_text} °F. "
            f"So {value_text} °C is {f_text} °F."
        )
        question = _conversion_question(form % 4, value_text, "degrees Celsius", "°C", "degrees Fahrenheit")
        if form % 4 == 1:
            question = (f"Express {value_text} °C in degrees Fahrenheit.", "")
        add(question, answer)
        form += 1

    for value_text in rng.sample(["0", "50", "98.6", "212", "350"], per_kind):
        f = Fraction(value_text)
        diff = f - 32
        c_text, exact = _fmt(diff * Fraction(5, 9))
        sign = "=" if exact else "≈"
        answer = (
            f"Subtract 32 and multiply by 5/9: ({value_text} − 32) × 5/9 = {fmt_num(diff)} × 5/9 {sign} {c_text} °C. "
            f"So {value_text} °F is {'' if exact else 'about '}{c_text} °C."
        )
        question = _conversion_question(form % 4, value_text, "degrees Fahrenheit", "°F", "degrees Celsius")
        if form % 4 == 1:
            question = (f"Express {value_text} °F in degrees Celsius.", "")
        add(question, answer)
        form += 1

    for minutes in rng.sample([75, 95, 135, 200, 250], per_kind):
        hours, rest = divmod(minutes, 60)
        answer = (
            f"{minutes} minutes is {hm(hours, rest)}, because {hours} × 60 = {hours * 60} "
            f"and {minutes} − {hours * 60} = {rest}."
        )
        if form % 4 == 3:
            question = ("Convert this duration to hours and minutes.", f"{minutes} minutes")
        else:
            question = (f"Convert {minutes} minutes to hours and minutes.", "")
            if form % 4 == 1:
                question = (f"How many hours and minutes are there in {minutes} minutes?", "")
        add(question, answer)
        form += 1
    return out


# ---------------------------------------------------------------------------------------------
# Generated: sorting, counting and reversing
# ---------------------------------------------------------------------------------------------

SORT_WORDS = [
    "river", "apple", "candle", "mountain", "zebra", "orange", "kettle", "banana", "window",
    "lemon", "garden", "piano", "tiger", "violin", "pencil", "cloud", "harbour", "meadow",
    "jacket", "rocket", "basket", "dolphin", "forest", "island", "noodle", "quartz", "umbrella",
    "walnut", "yogurt", "eagle", "falcon", "ginger", "hammer", "igloo", "jungle", "koala",
    "ladder", "magnet", "needle", "olive", "puzzle", "saddle", "tunnel", "velvet", "wagon",
]


def generate_sorting(rng: random.Random) -> list[tuple[str, dict[str, str]]]:
    out = []
    ascending = ["Sort these numbers from smallest to largest.", "Arrange the following numbers in ascending order."]
    descending = ["Sort these numbers from largest to smallest.", "Arrange the following numbers in descending order."]
    words = ["Put these words in alphabetical order.", "Sort the following words alphabetically."]
    for i in range(5):
        low = -50 if i >= 3 else 1
        numbers = rng.sample(range(low, 200), rng.randint(5, 8))
        out.append(("sorting", {
            "instruction": ascending[i % 2],
            "input": ", ".join(map(str, numbers)),
            "output": ", ".join(map(str, sorted(numbers))),
        }))
    for i in range(4):
        numbers = rng.sample(range(1, 500), rng.randint(5, 8))
        out.append(("sorting", {
            "instruction": descending[i % 2],
            "input": ", ".join(map(str, numbers)),
            "output": ", ".join(map(str, sorted(numbers, reverse=True))),
        }))
    for i in range(5):
        chosen = rng.sample(SORT_WORDS, rng.randint(5, 7))
        out.append(("sorting", {
            "instruction": words[i % 2],
            "input": ", ".join(chosen),
            "output": ", ".join(sorted(chosen)),
        }))
    return out


COUNT_SENTENCES = [
    "The old lighthouse keeper painted the door bright yellow",
    "Our neighbours grow tomatoes and beans on their balcony",
    "A small boat drifted slowly across the calm green lake",
    "Please remember to water the plants while I am away",
    "The library will stay open late during exam week",
    "Fresh bread smells wonderful early in the morning",
    "Three curious foxes watched the campers from behind the trees",
]
REVERSE_SENTENCES = [
    "She practised the piano every evening after dinner",
    "The museum guide told us a story about a lost painting",
    "Heavy snow closed the mountain pass for two days",
    "My grandfather still writes letters with a fountain pen",
    "The children built a sandcastle with a tall tower",
    "A gentle breeze carried the scent of pine through the valley",
    "We missed the last train and walked home under the stars",
]
LETTER_WORDS = [
    "banana", "mississippi", "bookkeeper", "committee", "strawberry", "balloon", "parallel",
    "assessment", "coffee", "referee", "successful", "tomorrow", "engineering", "bubble",
]
REVERSE_WORDS = [
    "planet", "journey", "window", "garden", "pencil", "rhythm", "lantern", "harvest",
    "compass", "orchard", "blanket", "thunder",
]


def generate_counting(rng: random.Random) -> list[tuple[str, dict[str, str]]]:
    out = []
    word_questions = ["How many words are in this sentence?", "Count the words in the following sentence."]
    for i, sentence in enumerate(COUNT_SENTENCES):
        words = sentence.split()
        listed = ", ".join(f"{w} ({k})" for k, w in enumerate(words, start=1))
        out.append(("counting", {
            "instruction": word_questions[i % 2],
            "input": sentence + ".",
            "output": f"Counting the words one by one: {listed}. The sentence has {len(words)} words.",
        }))
    for i, word in enumerate(rng.sample(LETTER_WORDS, 7)):
        counts = Counter(word)
        letter = rng.choice(sorted(ch for ch, n in counts.items() if n >= 2))
        if i % 2 == 0:
            question = f'How many times does the letter "{letter}" appear in this word?'
        else:
            question = f'Count how often the letter "{letter}" occurs in the following word.'
        out.append(("counting", {
            "instruction": question,
            "input": word,
            "output": f'Spelled out, "{word}" is {"-".join(word)}. The letter "{letter}" appears {counts[letter]} times.',
        }))
    return out


def generate_reversing(rng: random.Random) -> list[tuple[str, dict[str, str]]]:
    out = []
    sentence_questions = [
        "Reverse the order of the words in this sentence.",
        "Write this sentence with its words in reverse order.",
    ]
    for i, sentence in enumerate(REVERSE_SENTENCES):
        out.append(("reversing", {
            "instruction": sentence_questions[i % 2],
            "input": sentence,
            "output": " ".join(reversed(sentence.split())),
        }))
    word_questions = ["Reverse the letters of this word.", "Spell the following word backwards."]
    for i, word in enumerate(rng.sample(REVERSE_WORDS, 7)):
        out.append(("reversing", {
            "instruction": word_questions[i % 2],
            "input": word,
            "output": f'"{word}" written backwards is "{word[::-1]}".',
        }))
    return out


# ---------------------------------------------------------------------------------------------
# Assembly, checks and output
# ---------------------------------------------------------------------------------------------

MAX_OUTPUT_WORDS = 150
MAX_GENERATED_SHARE = 0.35


def build_records() -> list[tuple[str, dict[str, str]]]:
    """All records as ``(task, record)`` pairs, in their final (shuffled) order."""
    records: list[tuple[str, dict[str, str]]] = []
    for block in HANDWRITTEN_BLOCKS:
        records.extend(parse_handwritten(block))
    records.extend(generate_word_problems(random.Random(SEED + 1)))
    records.extend(generate_conversions(random.Random(SEED + 2)))
    records.extend(generate_sorting(random.Random(SEED + 3)))
    records.extend(generate_counting(random.Random(SEED + 4)))
    records.extend(generate_reversing(random.Random(SEED + 5)))
    check_records(records)
    random.Random(SEED).shuffle(records)
    return records


def check_records(records: list[tuple[str, dict[str, str]]]) -> None:
    seen = set()
    for task, record in records:
        if list(record) != ["instruction", "input", "output"]:
            raise ValueError(f"bad fields {list(record)}")
        if not all(isinstance(v, str) for v in record.values()):
            raise ValueError(f"non-string field in {record['instruction']!r}")
        if not record["instruction"].strip() or not record["output"].strip():
            raise ValueError(f"empty instruction or output: {record!r}")
        key = (record["instruction"], record["input"])
        if key in seen:
            raise ValueError(f"duplicate instruction+input: {key!r}")
        seen.add(key)
        words = len(record["output"].split())
        if words > MAX_OUTPUT_WORDS:
            raise ValueError(f"output of {words} words: {record['instruction']!r}")
    generated = sum(task in GENERATED_TASKS for task, _ in records)
    if generated > MAX_GENERATED_SHARE * len(records):
        raise ValueError(f"{generated} of {len(records)} records are generated (limit 35%)")


def render(records: list[tuple[str, dict[str, str]]]) -> str:
    return json.dumps([record for _, record in records], indent=1, ensure_ascii=False) + "\n"


def print_stats(records: list[tuple[str, dict[str, str]]]) -> None:
    counts = Counter(task for task, _ in records)
    with_input = Counter(task for task, r in records if r["input"])
    print(f"{'task type':<26}{'source':<14}{'records':>8}{'with input':>12}")
    for task in HANDWRITTEN_TASKS + GENERATED_TASKS:
        source = "generated" if task in GENERATED_TASKS else "hand-written"
        print(f"{task:<26}{source:<14}{counts[task]:>8}{with_input[task]:>12}")
    generated = sum(counts[t] for t in GENERATED_TASKS)
    print(f"{'total':<40}{len(records):>8}{sum(with_input.values()):>12}")
    print(f"generated share: {generated / len(records):.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON file")
    parser.add_argument("--stats", action="store_true", help="print counts per task type")
    parser.add_argument("--check", action="store_true", help="only check that the file on disk is up to date")
    args = parser.parse_args(argv)

    records = build_records()
    text = render(records)
    if args.stats:
        print_stats(records)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            print(f"{args.output} is out of date; run scripts/build_default_dataset.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        json.dump([record for _, record in records], f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(records)} records to {args.output.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
